"""What the networks learned (PAPER.md §5, qualitative analysis).

One pass over a bounded number of examples of a video dataset feeds every
figure. An *example* is one stored frame of a video and the 1-second window
of the same video's sound centred on it (moved inside the audio near the
ends; it always contains the frame's time), read with the AVC input
pipeline's video reader and front ends (`input_pipeline.read_videos`,
`image_ops.preprocess_for_eval`, `input_pipeline.add_spectrogram`). A
unit's activation on an example is the spatial max of its conv4_2 channel,
i.e. its pool4 value; units are ranked per *video* (a video's best frame),
so that near-duplicate frames of one video never fill a unit's top-k.

Written under `output_dir`:

  vision_units/unit_NNN_frames.png     top-k frames (central crops, as the
                                       tower sees them) of unit NNN
  vision_units/unit_NNN_heatmaps.png   the same with the unit's conv4_2 map
                                       upsampled and overlaid
  audio_units/unit_NNN_frames.png      the frames of the clips whose sound
                                       activates audio unit NNN most
  audio_units/unit_NNN_spectrograms.png  their log-spectrograms with the
                                       unit's map overlaid (Hz, s)
  localization/pair_NN.png             frame | where its own sound comes
                                       from | the same for another video's
                                       sound (`l3_tf.analysis.localize`)
  selectivity.json                     labelled datasets: per-unit label
                                       purity (`selectivity`), trained vs
                                       random weights vs shuffled labels
  summary.json                         what was shown, with scores, and the
                                       localisation hit rate and box
                                       contrast when the objects' boxes are
                                       known (trained and random weights)
  tensorboard/                         the same PNGs as image summaries
                                       (when asked)
"""

import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from l3_tf.analysis import localization_figures
from l3_tf.analysis import localize
from l3_tf.analysis import selectivity as selectivity_lib
from l3_tf.analysis import unit_figures
from l3_tf.analysis import units as units_lib
from l3_tf.data import frame_sound_examples as examples_lib
from l3_tf.data import input_pipeline
from l3_tf.model import networks as model_lib
from l3_tf.training import workdir as workdir_lib



@dataclasses.dataclass(frozen=True)
class Options:
  """What to read and what to show.

  Attributes:
    max_videos: videos read from the split (the bound of the one pass).
    frames_per_video: examples per video, frames spread evenly over the
      frames that admit a full sound window.
    batch_size: examples per forward pass.
    top_k: videos shown per unit.
    num_units: units shown per modality when none are listed: the most
      label-selective (labelled datasets) or the most peaked (others).
    vision_units: vision units to show instead (conv4_2 channel indices).
    audio_units: audio units to show instead.
    num_pairs: localisation figures (frames of distinct videos).
    purity_k: top-k videos per unit for the purity measure.
    purity_threshold: a unit is "selective" if its purity reaches this.
    null_repeats: label shuffles of the permutation null.
    random_seed: initialisation seed of the random-weights network.
    tensorboard: also write every PNG as a TensorBoard image summary.
  """

  max_videos: int = 128
  frames_per_video: int = 2
  batch_size: int = 32
  top_k: int = 8
  num_units: int = 6
  vision_units: tuple[int, ...] = ()
  audio_units: tuple[int, ...] = ()
  num_pairs: int = 8
  purity_k: int = 10
  purity_threshold: float = 0.6
  null_repeats: int = 20
  random_seed: int = 0
  tensorboard: bool = False

  def __post_init__(self):
    for name in ("max_videos", "frames_per_video", "batch_size", "top_k",
                 "purity_k", "null_repeats"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
    for name in ("num_units", "num_pairs"):
      if getattr(self, name) < 0:
        raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
    if not 0 < self.purity_threshold <= 1:
      raise ValueError(f"purity_threshold={self.purity_threshold} must be "
                       "in (0, 1]")



def _pool4(avc: keras.Model):
  vision, audio, _ = model_lib.towers_of(avc)

  @tf.function(autograph=False)
  def run(features):
    return {units_lib.VISION: vision(features["image"], training=False)["embedding_512"],
            units_lib.AUDIO: audio(features["spectrogram"], training=False)[
                "embedding_512"]}  # [b, C] each

  return run


def collect(dataset: tf.data.Dataset, networks: dict[str, keras.Model],
            label_names: list[str] | None = None
            ) -> tuple[examples_lib.Examples, dict[str, dict[str, np.ndarray]]]:
  """Reads `example_dataset` once and runs every network on it.

  Returns:
    (the examples, {network name: {"vision": [n, C], "audio": [n, C]}}
    unit activations = spatial max of conv4_2 = pool4).
  """
  runs = {name: _pool4(avc) for name, avc in networks.items()}
  fields = {k: [] for k in ("video_id", "label", "frame_time", "audio_start",
                            "frame", "waveform")}
  activations = {name: {m: [] for m in units_lib.MODALITIES} for name in networks}
  for features, examples in dataset:
    for key in fields:
      fields[key].append(examples[key].numpy())
    for name, run in runs.items():
      for modality, value in run(features).items():
        activations[name][modality].append(
            tf.cast(value, tf.float32).numpy())
  if not fields["frame"]:
    return None, {}
  joined = {k: np.concatenate(v) for k, v in fields.items()}
  examples = examples_lib.Examples(
      video_ids=np.array([v.decode("utf-8") for v in joined["video_id"]]),
      labels=joined["label"].astype(np.int64),
      frame_times=joined["frame_time"].astype(np.float32),
      audio_starts=joined["audio_start"].astype(np.int64),
      frames=list(joined["frame"]),
      waveforms=joined["waveform"],
      label_names=label_names)
  return examples, {name: {m: np.concatenate(v) for m, v in per.items()}
                    for name, per in activations.items()}


# ------------------------------------------------------------ TensorBoard


def write_image_summaries(paths: Sequence[str], output_dir: str,
                          logdir: str, step: int = 0) -> int:
  """Writes each PNG (path under `output_dir`) as an image summary tagged by
  its relative path; returns how many."""
  writer = tf.summary.create_file_writer(logdir)
  with writer.as_default(step=step):
    for path in paths:
      image = tf.io.decode_png(tf.io.read_file(os.path.join(output_dir, path)),
                               channels=3)[tf.newaxis]  # [1, h, w, 3]
      tf.summary.image(os.path.splitext(path)[0], image)
  writer.close()
  return len(paths)


# ------------------------------------------------------------ entry points


def visualize(avc: keras.Model, config, builder, split: str, output_dir: str,
              options: Options = Options(),
              random_avc: keras.Model | None = None,
              boxes_of: localization_figures.BoxesFn | None = None,
              description: str = "") -> dict[str, Any]:
  """Every figure and measure of this module for one network and split.

  Args:
    avc: the (trained) `avc_network`.
    config: its `Config` (front ends and architecture).
    builder: a prepared video dataset (`input_pipeline.load_builder`).
    split: the split to read.
    output_dir: where the files go (see the module docstring).
    options: what to read and show.
    random_avc: the same architecture with random weights, for the
      selectivity and localisation comparisons (skipped when None).
    boxes_of: the sounding objects' boxes of a frame, when the dataset has
      them (synthetic_av): adds the localisation hit rate and sound
      dependence (also of `random_avc`, under localization["random"]).
    description: recorded in summary.json (e.g. the workdir and step).

  Returns:
    The content of summary.json.

  Raises:
    ValueError: the split yields no example, or a listed unit does not exist.
  """
  started = time.perf_counter()
  os.makedirs(output_dir, exist_ok=True)
  labelled = "label" in builder.info.features
  label_names = (list(builder.info.features["label"].names) if labelled
                 else None)
  vision_tower, audio_tower, _ = model_lib.towers_of(avc)
  unit_figures.check_units(options.vision_units, vision_tower.output["conv4_2"].shape[-1],
               units_lib.VISION)
  unit_figures.check_units(options.audio_units, audio_tower.output["conv4_2"].shape[-1],
               units_lib.AUDIO)
  networks = {units_lib.TRAINED: avc}
  if random_avc is not None:
    networks[units_lib.RANDOM] = random_avc
  dataset = examples_lib.example_dataset(config, builder, split, options.max_videos,
                            options.frames_per_video, options.batch_size)
  examples, activations = collect(dataset, networks, label_names)
  if examples is None:
    raise ValueError(f"split {split!r} of {builder.name!r} has no video that "
                     "holds a full sound window around a frame")
  summary = {
      "description": description,
      "dataset": builder.info.full_name,
      "split": split,
      "num_examples": len(examples),
      "num_videos": int(len(set(examples.video_ids.tolist()))),
      "options": dataclasses.asdict(options),
      "units": unit_figures.unit_figures(avc, config, examples, activations[units_lib.TRAINED],
                            output_dir, options),
  }
  localizer = localize.Localizer(avc, config.model, config.image, config.audio)
  summary["localization"] = {"pairs": localization_figures.localization_figures(
      localizer, examples, output_dir, options.num_pairs)}
  if boxes_of is not None:
    summary["localization"]["hit_rate"] = localization_figures.localization_hit_rate(
        localizer, examples, boxes_of)
    summary["localization"]["sound_dependence"] = localization_figures.sound_dependence(
        localizer, examples, boxes_of)
    if random_avc is not None:  # what the architecture alone gives
      random_localizer = localize.Localizer(random_avc, config.model,
                                            config.image, config.audio)
      summary["localization"][units_lib.RANDOM] = {
          "hit_rate": localization_figures.localization_hit_rate(random_localizer, examples,
                                            boxes_of),
          "sound_dependence": localization_figures.sound_dependence(random_localizer, examples,
                                               boxes_of)}
  if labelled:
    report = selectivity_lib.selectivity(activations, examples, options.purity_k,
                         options.purity_threshold, options.null_repeats,
                         options.random_seed)
    report["description"] = description
    with open(os.path.join(output_dir, "selectivity.json"), "w") as f:
      json.dump(report, f, indent=2)
    summary["selectivity"] = {
        key: value for key, value in report.items() if key not in units_lib.MODALITIES}
    if "skipped" not in report:
      summary["selectivity"].update({
          modality: {name: {**{k: s[k] for k in selectivity_lib.SUMMARY_KEYS},
                            "relative": {k: s["relative"][k]
                                         for k in selectivity_lib.SUMMARY_KEYS}}
                     for name, s in report[modality].items()}
          for modality in units_lib.MODALITIES})
    summary["selectivity_table"] = selectivity_lib.selectivity_table(report)
  pngs = sorted(os.path.relpath(os.path.join(d, f), output_dir)
                for d, _, names in os.walk(output_dir) for f in names
                if f.endswith(".png"))
  summary["files"] = pngs
  if options.tensorboard:
    summary["tensorboard"] = {"logdir": "tensorboard", "images": (
        write_image_summaries(pngs, output_dir,
                              os.path.join(output_dir, "tensorboard")))}
  summary["seconds"] = time.perf_counter() - started
  with open(os.path.join(output_dir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
  return summary


def visualize_workdir(workdir: str, output_dir: str, *,
                      dataset: str | None = None, data_dir: str | None = None,
                      split: str | None = None, options: Options = Options(),
                      boxes_for: Callable[[Any], localization_figures.BoxesFn | None] | None = None
                      ) -> dict[str, Any]:
  """`visualize` for the latest checkpoint of a training workdir.

  Args:
    workdir: a training workdir.
    output_dir: where the files go.
    dataset: a prepared video dataset (default: the one it trained on).
    data_dir: its TFDS data dir (default: the training config's).
    split: default the config's evaluation split.
    options: see `Options`.
    boxes_for: builder -> `localization_figures.BoxesFn` or None (ground-truth boxes, when the
      dataset has them).
  """
  config, avc, step = workdir_lib.restore_avc_model(workdir)
  builder = input_pipeline.load_builder(
      dataset or config.data.dataset,
      data_dir if data_dir is not None else config.data.data_dir)
  _, random_avc, random_name = workdir_lib.load_network(
      "random", config, options.random_seed)
  boxes_of = boxes_for(builder) if boxes_for is not None else None
  return visualize(avc, config, builder, split or config.data.eval_split,
                   output_dir, options, random_avc, boxes_of,
                   description=f"{workdir} (step {step}, config "
                               f"{config.name}); random: {random_name}")
