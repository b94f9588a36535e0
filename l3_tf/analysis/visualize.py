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

from l3_tf.analysis import localize
from l3_tf.analysis import overlays
from l3_tf.analysis import units as units_lib
from l3_tf.data import audio_frontend
from l3_tf.data import image_ops
from l3_tf.data import input_pipeline
from l3_tf.data import pairs as pairs_lib
from l3_tf.data import video_example
from l3_tf.model import networks as model_lib
from l3_tf.training import workdir as workdir_lib

VISION = "vision"
AUDIO = "audio"
MODALITIES = (VISION, AUDIO)
TRAINED = "trained"
RANDOM = "random"

# (video_id, frame time in s) -> boxes [x0, y0, x1, y1] as fractions of the
# frame, of the objects that sound at that time.
BoxesFn = Callable[[str, float], Sequence[Sequence[float]]]


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


@dataclasses.dataclass
class Examples:
  """The examples of one pass, in reading order.

  Attributes:
    video_ids: str `[n]`.
    labels: int64 `[n]`, -1 where the dataset has no label.
    frame_times: float32 `[n]` time of each frame, s.
    audio_starts: int64 `[n]` first sample of each sound window.
    frames: `n` JPEG-encoded stored frames (decoded on demand).
    waveforms: int16 `[n, clip_samples]` the sound windows.
    label_names: class names of the dataset's labels, or None.
  """

  video_ids: np.ndarray
  labels: np.ndarray
  frame_times: np.ndarray
  audio_starts: np.ndarray
  frames: list[bytes]
  waveforms: np.ndarray
  label_names: list[str] | None

  def __len__(self) -> int:
    return len(self.frames)

  def frame(self, i: int) -> np.ndarray:
    """uint8 `[h, w, 3]` the stored frame (short side 256)."""
    return tf.io.decode_jpeg(self.frames[i], channels=3).numpy()

  def waveform(self, i: int) -> np.ndarray:
    """float32 `[clip_samples]` in [-1, 1]."""
    return self.waveforms[i].astype(np.float32) / video_example.AUDIO_SCALE

  def label_name(self, i: int) -> str | None:
    label = int(self.labels[i])
    if label < 0:
      return None
    if self.label_names and label < len(self.label_names):
      return self.label_names[label]
    return str(label)


def _frames_of(video, frames_per_video: int, params, labelled: bool):
  """The examples of one video: evenly spread eligible frames, each with the
  sound window centred on it (clamped to the windows that contain it)."""
  clip = params.clip_samples
  # Videos passed `input_pipeline.can_form_pairs`: one time per frame.
  eligible = pairs_lib.eligible_frames(video["frame_times"],
                                      video["num_samples"], params)
  candidates = tf.where(eligible)[:, 0]  # [e]
  count = tf.size(candidates, out_type=tf.int64)
  take = tf.minimum(count, frames_per_video)
  positions = tf.cast(tf.floor(
      (tf.range(take, dtype=tf.float64) + 0.5)
      * tf.cast(count, tf.float64) / tf.cast(take, tf.float64)), tf.int64)
  index = tf.gather(candidates, positions)  # [f]
  times = tf.gather(video["frame_times"], index)  # [f]
  lo, hi = pairs_lib.positive_window_bounds(
      times, tf.fill([take], video["num_samples"]), params)
  centred = tf.cast(tf.round(tf.cast(times, tf.float64) * params.sample_rate_hz),
                    tf.int64) - clip // 2
  start = tf.clip_by_value(centred, lo, hi)  # [f]
  samples = start[:, tf.newaxis] + tf.range(clip, dtype=tf.int64)  # [f, clip]
  label = video["label"] if labelled else tf.constant(-1, tf.int64)
  return {
      "video_id": tf.fill([take], video["video_id"]),
      "label": tf.fill([take], tf.cast(label, tf.int64)),
      "frame_time": times,
      "audio_start": start,
      "frame": tf.gather(video["frames"], index),
      "waveform": tf.gather(video["audio"], samples),  # [f, clip] int16
  }


def example_dataset(config, builder, split: str, max_videos: int,
                    frames_per_video: int, batch_size: int) -> tf.data.Dataset:
  """Batches `(features, examples)` of the first `max_videos` usable videos.

  features: {"image": [b, crop, crop, 3] central crops in [-1, 1],
  "spectrogram": [b, bins, frames, 1]}, as AVC evaluation makes them;
  examples: the per-example fields of `Examples` (JPEG frame, int16 sound).

  Raises:
    input_pipeline.DatasetError: the split does not exist or is empty.
  """
  input_pipeline.check_split(builder, split, min_videos=1)
  labelled = "label" in builder.info.features
  videos = input_pipeline.read_videos(
      builder, split, extra_features=("label",) if labelled else ())
  # Plain graph code: AutoGraph's conversion would cost seconds here.
  plain = tf.autograph.experimental.do_not_convert
  videos = videos.filter(plain(
      lambda v: input_pipeline.can_form_pairs(v, config.audio))).take(max_videos)
  examples = videos.flat_map(plain(lambda v: tf.data.Dataset.from_tensor_slices(
      _frames_of(v, frames_per_video, config.audio, labelled))))

  def features(example):
    frame = tf.io.decode_jpeg(example["frame"], channels=3)  # [h, w, 3]
    image = image_ops.preprocess_for_eval(frame, config.image)  # [crop, crop, 3]
    waveform = (tf.cast(example["waveform"], tf.float32)
                / video_example.AUDIO_SCALE)  # [clip]
    return {"image": image, "waveform": waveform}, example

  batches = examples.map(plain(features),
                         num_parallel_calls=input_pipeline.AUTOTUNE)
  batches = batches.batch(batch_size).map(
      plain(lambda f, e: (input_pipeline.add_spectrogram(f, config.audio), e)),
      num_parallel_calls=input_pipeline.AUTOTUNE)
  return batches.prefetch(input_pipeline.AUTOTUNE)


def _pool4(avc: keras.Model):
  vision, audio, _ = model_lib.towers_of(avc)

  @tf.function(autograph=False)
  def run(features):
    return {VISION: vision(features["image"], training=False)["embedding_512"],
            AUDIO: audio(features["spectrogram"], training=False)[
                "embedding_512"]}  # [b, C] each

  return run


def collect(dataset: tf.data.Dataset, networks: dict[str, keras.Model],
            label_names: list[str] | None = None
            ) -> tuple[Examples, dict[str, dict[str, np.ndarray]]]:
  """Reads `example_dataset` once and runs every network on it.

  Returns:
    (the examples, {network name: {"vision": [n, C], "audio": [n, C]}}
    unit activations = spatial max of conv4_2 = pool4).
  """
  runs = {name: _pool4(avc) for name, avc in networks.items()}
  fields = {k: [] for k in ("video_id", "label", "frame_time", "audio_start",
                            "frame", "waveform")}
  activations = {name: {m: [] for m in MODALITIES} for name in networks}
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
  examples = Examples(
      video_ids=np.array([v.decode("utf-8") for v in joined["video_id"]]),
      labels=joined["label"].astype(np.int64),
      frame_times=joined["frame_time"].astype(np.float32),
      audio_starts=joined["audio_start"].astype(np.int64),
      frames=list(joined["frame"]),
      waveforms=joined["waveform"],
      label_names=label_names)
  return examples, {name: {m: np.concatenate(v) for m, v in per.items()}
                    for name, per in activations.items()}


# ------------------------------------------------------------ unit ranking


def video_level(activations: np.ndarray, examples: Examples,
                labelled_only: bool = False
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Per-video unit activations (each video's best example).

  Returns:
    (`[videos, units]` activations, `[videos, units]` example index of each
    maximum, `[videos]` labels), videos in reading order; with
    `labelled_only`, videos without a label are left out.
  """
  keep = (examples.labels >= 0) if labelled_only else np.ones(len(examples), bool)
  rows = np.flatnonzero(keep)
  best, index = units_lib.best_per_group(activations[rows],
                                         examples.video_ids[rows])
  index = rows[index]  # [videos, units] indices into all examples
  return best, index, examples.labels[index[:, 0]]


def _contrast(video_activations: np.ndarray, k: int) -> np.ndarray:
  """How far each unit's top-k videos stand out: (mean top-k - mean) / std."""
  top = -np.sort(-video_activations, axis=0)[:k]  # [k, units]
  spread = video_activations.std(axis=0)
  return np.where(spread > 0, (top.mean(axis=0) - video_activations.mean(axis=0))
                  / np.maximum(spread, 1e-12), 0.0)


def rank_units(video_activations: np.ndarray, labels: np.ndarray | None,
               k: int, threshold: float = 1.0) -> list[int]:
  """Units, most interesting first.

  With labels: the selective units (purity of the top-k videos >= threshold)
  first, taken round-robin over their majority labels (the best unit of
  every label, then the second best of every label...) so that a few units
  show many classes; then the others; each by purity, then contrast.
  Without labels: by contrast (`_contrast`). Dead units (constant over the
  videos) come last.
  """
  k = min(k, video_activations.shape[0])
  contrast = _contrast(video_activations, k)
  dead = units_lib.dead_units(video_activations)
  if labels is None:
    return [int(u) for u in np.lexsort((-contrast, dead))]
  unit_purity, majority = units_lib.purity(
      units_lib.top_k_examples(video_activations, k), labels)
  # lexsort: the last key is the primary one.
  order = np.lexsort((-contrast, -unit_purity, dead))
  selective = ~dead & (unit_purity >= threshold)
  seen: dict[int, int] = {}
  turn = np.zeros(len(order), np.int64)  # units of its label ranked before it
  for position, unit in enumerate(order):
    if selective[unit]:
      turn[position] = seen.get(int(majority[unit]), 0)
      seen[int(majority[unit])] = turn[position] + 1
  round_robin = order[np.lexsort((np.arange(len(order)), turn,
                                  ~selective[order], dead[order]))]
  return [int(u) for u in round_robin]


def _check_units(units: Sequence[int], count: int, modality: str) -> list[int]:
  bad = [u for u in units if not 0 <= u < count]
  if bad:
    raise ValueError(f"{modality} units {bad} do not exist: the {modality} "
                     f"tower's conv4_2 has {count} channels (0..{count - 1})")
  return [int(u) for u in units]


# ------------------------------------------------------------ unit maps


def vision_inputs(examples: Examples, indices: Sequence[int],
                  config) -> tf.Tensor:
  """`[n, crop, crop, 3]` in [-1, 1]: the central crops the tower saw."""
  return tf.stack([image_ops.preprocess_for_eval(
      tf.io.decode_jpeg(examples.frames[i], channels=3), config.image)
                   for i in indices])


def audio_inputs(examples: Examples, indices: Sequence[int],
                 config) -> tf.Tensor:
  """`[n, bins, frames, 1]` log-spectrograms of the sound windows."""
  waveforms = np.stack([examples.waveform(i) for i in indices])
  return audio_frontend.log_spectrogram(tf.constant(waveforms), config.audio)


def unit_maps(tower: keras.Model, inputs: tf.Tensor, unit: int) -> np.ndarray:
  """`[n, h, w]` the unit's conv4_2 (after ReLU) map on each input."""
  return tower(inputs, training=False)["conv4_2"][..., unit].numpy()


def _caption(examples: Examples, i: int, rank: int, score: float) -> str:
  name = examples.label_name(i)
  video = os.path.basename(str(examples.video_ids[i]))
  if len(video) > 24:
    video = video[:10] + "..." + video[-11:]
  text = f"#{rank + 1} {score:.3g} @{examples.frame_times[i]:.2f}s\n{video}"
  return f"{text}\n{name}" if name is not None else text


def _unit_title(modality: str, unit: int, info: dict) -> str:
  title = f"{modality} unit {unit}"
  if info.get("purity") is not None:
    title += (f"  purity {info['purity']:.2f} (top {info['purity_k']}, "
              f"majority {info['majority_label']})")
  return title


def _vision_unit_files(tower, config, examples: Examples, top: list[int],
                       unit: int, captions: list[str], title: str,
                       stem: str) -> list[str]:
  """Top frames (central crops) of a vision unit, bare and with its map."""
  crops = vision_inputs(examples, top, config)
  maps = unit_maps(tower, crops, unit)  # [k, h4, w4]
  images = (crops.numpy() + 1.0) / 2.0  # [k, crop, crop, 3] in [0, 1]
  heats = [localize.upsample_grid(m, *images.shape[1:3]) for m in maps]
  high = max(float(np.max(maps)), 1e-6)
  return [
      overlays.save_grid(
          [(lambda ax, im=im: overlays.draw_image_overlay(ax, im, None), c)
           for im, c in zip(images, captions)], f"{stem}_frames.png", title),
      overlays.save_grid(
          [(lambda ax, im=im, h=h: overlays.draw_image_overlay(
              ax, im, h, vmin=0.0, vmax=high), c)
           for im, h, c in zip(images, heats, captions)],
          f"{stem}_heatmaps.png",
          f"{title}\nconv4_2 map, colour 0..{high:.3g} (shared)")]


def _audio_unit_files(tower, config, examples: Examples, top: list[int],
                      unit: int, captions: list[str], title: str,
                      stem: str) -> list[str]:
  """Frames of an audio unit's top clips, and their spectrograms with its
  map."""
  spectrograms = audio_inputs(examples, top, config)
  maps = unit_maps(tower, spectrograms, unit)  # [k, h4, w4]
  high = max(float(np.max(maps)), 1e-6)
  frames = [examples.frame(i) / 255.0 for i in top]
  return [
      overlays.save_grid(
          [(lambda ax, im=im: overlays.draw_image_overlay(ax, im, None), c)
           for im, c in zip(frames, captions)], f"{stem}_frames.png",
          f"{title}\nframes of the clips whose sound activates it most"),
      overlays.save_grid(
          [(lambda ax, s=s, m=m: overlays.draw_spectrogram_overlay(
              ax, s, m, config.audio, vmin=0.0, vmax=high), c)
           for s, m, c in zip(spectrograms.numpy(), maps, captions)],
          f"{stem}_spectrograms.png",
          f"{title}\nconv4_2 map, colour 0..{high:.3g} (shared)",
          panel_inches=(2.8, 2.4))]


def unit_figures(avc: keras.Model, config, examples: Examples,
                 activations: dict[str, np.ndarray], output_dir: str,
                 options: Options) -> dict[str, list[dict]]:
  """The unit grids of both towers; returns what was shown, per modality."""
  vision_tower, audio_tower, _ = model_lib.towers_of(avc)
  draw = {VISION: lambda *a: _vision_unit_files(vision_tower, config, *a),
          AUDIO: lambda *a: _audio_unit_files(audio_tower, config, *a)}
  requested = {VISION: options.vision_units, AUDIO: options.audio_units}
  labelled = bool(np.any(examples.labels >= 0))
  shown = {}
  for modality in MODALITIES:
    per_video, best_example, _ = video_level(activations[modality], examples)
    labelled_acts, _, labels = video_level(activations[modality], examples,
                                           labelled_only=True)
    if requested[modality]:
      chosen = _check_units(requested[modality], per_video.shape[1], modality)
    else:
      use_labels = labelled and len(set(labels.tolist())) > 1
      order = rank_units(labelled_acts if use_labels else per_video,
                         labels if use_labels else None, options.purity_k,
                         options.purity_threshold)
      chosen = order[:options.num_units]
    if chosen:
      os.makedirs(os.path.join(output_dir, f"{modality}_units"), exist_ok=True)
    k = min(options.top_k, per_video.shape[0])
    purity_k = min(options.purity_k, labelled_acts.shape[0])
    shown[modality] = []
    for unit in chosen:
      top_videos = units_lib.top_k_examples(per_video[:, [unit]], k)[0]
      top = [int(best_example[v, unit]) for v in top_videos]  # example ids
      scores = [float(activations[modality][i, unit]) for i in top]
      info = {"unit": unit, "purity": None, "majority_label": None,
              "purity_k": purity_k,
              "top": [{"video_id": str(examples.video_ids[i]),
                       "frame_time": float(examples.frame_times[i]),
                       "label": examples.label_name(i), "activation": s}
                      for i, s in zip(top, scores)]}
      if purity_k > 0:
        unit_purity, majority = units_lib.purity(units_lib.top_k_examples(
            labelled_acts[:, [unit]], purity_k), labels)
        info["purity"] = float(unit_purity[0])
        info["majority_label"] = (examples.label_names[majority[0]]
                                  if examples.label_names else int(majority[0]))
      captions = [_caption(examples, i, rank, s)
                  for rank, (i, s) in enumerate(zip(top, scores))]
      stem = os.path.join(output_dir, f"{modality}_units", f"unit_{unit:03d}")
      files = draw[modality](examples, top, unit, captions,
                             _unit_title(modality, unit, info), stem)
      info["files"] = [os.path.relpath(f, output_dir) for f in files]
      shown[modality].append(info)
  return shown


# ------------------------------------------------------------ localisation


def inside(point: tuple[float, float], box: Sequence[float]) -> bool:
  """Whether (x, y) lies in the box [x0, y0, x1, y1) (fractions)."""
  x, y = point
  return box[0] <= x < box[2] and box[1] <= y < box[3]


def _in_boxes(xs: np.ndarray, ys: np.ndarray,
              boxes: Sequence[Sequence[float]]) -> np.ndarray:
  """`[len(ys), len(xs)]` whether each point (x, y) lies in a box (`inside`)."""
  covered = np.zeros((len(ys), len(xs)), bool)
  for x0, y0, x1, y1 in boxes:
    covered |= (((ys >= y0) & (ys < y1))[:, None]
                & ((xs >= x0) & (xs < x1))[None, :])
  return covered


def box_union_fraction(boxes: Sequence[Sequence[float]],
                       resolution: int = 512) -> float:
  """Share of the frame covered by the union of boxes (fractions), i.e. the
  chance that a uniformly random location falls in one of them."""
  if not boxes:
    return 0.0
  centres = (np.arange(resolution) + 0.5) / resolution
  return float(_in_boxes(centres, centres, boxes).mean())


def localization_hit_rate(localizer: localize.Localizer, examples: Examples,
                          boxes_of: BoxesFn, max_frames: int | None = None
                          ) -> dict[str, Any]:
  """How often the heatmap's peak falls on a sounding object.

  For every example whose frame shows at least one sounding object (per
  `boxes_of`), the heatmap of (frame, its own sound) is computed; a hit is
  a peak (`localize.peak_position`) inside one of the boxes. The random-location
  baseline is the mean share of the frame the boxes cover.

  Returns:
    {"hit_rate", "random_baseline", "ratio", "num_frames",
     "num_without_object"}.
  """
  hits, areas, without = [], [], 0
  for i in range(len(examples)):
    if max_frames is not None and len(hits) >= max_frames:
      break
    boxes = [list(b) for b in boxes_of(str(examples.video_ids[i]),
                                       float(examples.frame_times[i]))]
    if not boxes:
      without += 1
      continue
    heatmap = localizer(examples.frame(i), examples.waveform(i))
    peak = localize.peak_position(heatmap)
    hits.append(any(inside(peak, box) for box in boxes))
    areas.append(box_union_fraction(boxes))
  if not hits:
    raise ValueError("no example shows a sounding object: cannot measure "
                     f"localisation ({without} frames without one)")
  hit_rate, baseline = float(np.mean(hits)), float(np.mean(areas))
  return {"hit_rate": hit_rate, "random_baseline": baseline,
          "ratio": hit_rate / baseline if baseline else None,
          "num_frames": len(hits), "num_without_object": without}


def box_contrast(heatmap: localize.Heatmap,
                 boxes: Sequence[Sequence[float]]) -> float:
  """Mean of the grid cells whose centre lies in a box minus the mean of the
  other cells: how much more the boxes support the correspondence."""
  rows, cols = heatmap.grid.shape
  height, width = heatmap.frame.shape[:2]
  half = localize.CELL_STRIDE / 2
  xs = (localize.CELL_STRIDE * np.arange(cols) + half) / width
  ys = (localize.CELL_STRIDE * np.arange(rows) + half) / height
  covered = _in_boxes(xs, ys, boxes)  # [rows, cols]
  if covered.all() or not covered.any():
    return 0.0
  return float(heatmap.grid[covered].mean() - heatmap.grid[~covered].mean())


def mismatched_partners(examples: Examples) -> np.ndarray:
  """For each example, an example of another video, with another label when
  labelled: the first video after its own, in reading order (cyclically),
  that qualifies; -1 when none does."""
  _, first = np.unique(examples.video_ids, return_index=True)
  first = np.sort(first)  # each video's first example, in reading order
  position = {examples.video_ids[i]: p for p, i in enumerate(first)}
  partners = np.full(len(examples), -1, np.int64)
  for i in range(len(examples)):
    start = position[examples.video_ids[i]]
    for step in range(1, len(first)):
      j = first[(start + step) % len(first)]
      if examples.labels[i] < 0 or examples.labels[j] != examples.labels[i]:
        partners[i] = j
        break
  return partners


def sound_dependence(localizer: localize.Localizer, examples: Examples,
                     boxes_of: BoxesFn) -> dict[str, Any]:
  """Whether the heatmap follows the sound rather than what merely stands out.

  For every frame showing a sounding object, the box contrast
  (`box_contrast`) of the heatmap with its own sound and with the sound of
  another video (another class when labelled, `mismatched_partners`).
  A map driven by saliency alone gives both the same contrast.

  Returns:
    {"own_contrast", "other_contrast" (means), "own_higher" (share of frames
     where the own sound gives the higher contrast), "num_frames"}.
  """
  partners = mismatched_partners(examples)
  own, other = [], []
  for i in range(len(examples)):
    boxes = [list(b) for b in boxes_of(str(examples.video_ids[i]),
                                       float(examples.frame_times[i]))]
    if not boxes or partners[i] < 0:
      continue
    frame = examples.frame(i)
    own.append(box_contrast(localizer(frame, examples.waveform(i)), boxes))
    other.append(box_contrast(
        localizer(frame, examples.waveform(partners[i])), boxes))
  if not own:
    raise ValueError("no example shows a sounding object with a partner of "
                     "another video")
  own, other = np.array(own), np.array(other)
  return {"own_contrast": float(own.mean()),
          "other_contrast": float(other.mean()),
          "own_higher": float(np.mean(own > other)),
          "num_frames": int(own.size)}


def localization_pairs(examples: Examples, count: int) -> list[tuple[int, int]]:
  """(example, example of another video) pairs: the first example of each
  of `count` videos, each with the sound of its `mismatched_partners`
  partner (the next video in reading order with a different label), or of
  the next video when no video has another label."""
  _, first = np.unique(examples.video_ids, return_index=True)
  first = np.sort(first)  # each video's first example, in reading order
  if len(first) < 2:
    return []
  partners = mismatched_partners(examples)
  return [(int(i), int(partners[i] if partners[i] >= 0
                       else first[(position + 1) % len(first)]))
          for position, i in enumerate(first[:count])]


def localization_figures(localizer: localize.Localizer, examples: Examples,
                         output_dir: str, count: int) -> list[dict]:
  """One PNG per pair: the frame, the heatmap of its own sound, and the
  heatmap of another video's sound, each on its own colour scale (its range
  is in the caption)."""
  if count == 0:
    return []
  folder = os.path.join(output_dir, "localization")
  os.makedirs(folder, exist_ok=True)
  shown = []
  for n, (i, j) in enumerate(localization_pairs(examples, count)):
    frame = examples.frame(i)
    own = localizer(frame, examples.waveform(i))
    other = localizer(frame, examples.waveform(j))
    name = examples.label_name(i)

    def caption(heatmap, what):
      return (f"{what}: P(corresponds) {heatmap.probability:.3f}\n"
              f"map {heatmap.pixels.min():.3f} (blue) .. "
              f"{heatmap.pixels.max():.3f} (red)")

    panels = [
        (lambda ax: overlays.draw_image_overlay(ax, own.frame, None),
         f"{examples.video_ids[i]} @{examples.frame_times[i]:.2f}s"
         + (f"\n{name}" if name else "")),
        (lambda ax: overlays.draw_image_overlay(ax, own.frame, own.pixels),
         caption(own, "its own sound")),
        (lambda ax: overlays.draw_image_overlay(ax, own.frame, other.pixels),
         caption(other, f"sound of {os.path.basename(examples.video_ids[j])}")),
    ]
    path = overlays.save_grid(
        panels, os.path.join(folder, f"pair_{n:02d}.png"),
        "where the sound comes from: P(corresponds) of the sound with each "
        "location of the frame", columns=3, panel_inches=(3.0, 3.0))
    peak_x, peak_y = localize.peak_position(own)
    shown.append({"video_id": str(examples.video_ids[i]),
                  "frame_time": float(examples.frame_times[i]),
                  "other_video_id": str(examples.video_ids[j]),
                  "probability": own.probability,
                  "other_probability": other.probability,
                  "peak": [peak_x, peak_y],
                  "file": os.path.relpath(path, output_dir)})
  return shown


# ------------------------------------------------------------ selectivity


def _selectivity_of(per_video: np.ndarray, labels: np.ndarray, k: int,
                    threshold: float, null_repeats: int, seed: int) -> dict:
  summary = units_lib.selectivity_summary(per_video, labels, k, threshold)
  summary["null"] = units_lib.permutation_null(per_video, labels, k, threshold,
                                               null_repeats, seed)
  return summary


def selectivity(activations: dict[str, dict[str, np.ndarray]],
                examples: Examples, k: int, threshold: float,
                null_repeats: int, seed: int = 0) -> dict[str, Any]:
  """Per-unit label purity of every network and modality (PAPER.md §5).

  Units rank the labelled videos (`video_level`) by activation magnitude, as
  in the paper, and also by relative activation
  (`units.relative_activations`, which discounts inputs that excite every
  unit); each summary (`units.selectivity_summary`) comes with the
  permutation null of the same activations (video labels shuffled).

  Returns:
    {"k", "threshold", "num_videos", "num_labels", "label_counts",
     "<modality>": {"<network>": magnitude summary + {"num_selective_labels":
     distinct majority labels of the selective units, "null": ...,
     "relative": the same keys for the relative ranking}}}, or
    {"skipped": reason} when the split has too few labelled videos or a
    single label.
  """
  first = next(iter(activations.values()))[VISION]
  _, _, labels = video_level(first, examples, labelled_only=True)
  num_labels = len(set(labels.tolist()))
  if len(labels) < k or num_labels < 2:
    return {"skipped": f"{len(labels)} labelled videos with {num_labels} "
                       f"distinct label(s); purity needs >= k={k} videos "
                       "and >= 2 labels"}
  report = {"k": k, "threshold": threshold, "num_videos": int(len(labels)),
            "num_labels": num_labels,
            "label_counts": {(examples.label_names[l] if examples.label_names
                              else str(l)): int(c) for l, c in zip(
                                  *np.unique(labels, return_counts=True))}}
  for modality in MODALITIES:
    report[modality] = {}
    for name, per_modality in activations.items():
      per_video, _, _ = video_level(per_modality[modality], examples,
                                    labelled_only=True)
      summary = _selectivity_of(per_video, labels, k, threshold, null_repeats,
                                seed)
      summary["relative"] = _selectivity_of(
          units_lib.relative_activations(per_video), labels, k, threshold,
          null_repeats, seed)
      report[modality][name] = summary
  return report


_SUMMARY_KEYS = ("num_units", "num_dead", "num_selective",
                 "num_selective_labels", "mean_purity", "null")


def selectivity_table(report: dict[str, Any]) -> str:
  """One line per modality, network and ranking: selective units (and of how
  many labels), mean purity, and the same with shuffled labels."""
  if "skipped" in report:
    return f"selectivity skipped: {report['skipped']}"
  lines = [f"purity of the top {report['k']} videos per unit, threshold "
           f"{report['threshold']}, {report['num_videos']} videos, "
           f"{report['num_labels']} labels"]
  for ranking in ("magnitude", "relative"):
    for modality in MODALITIES:
      for name, summary in report[modality].items():
        s = summary if ranking == "magnitude" else summary["relative"]
        lines.append(
            f"{ranking:9s} {modality:6s} {name:8s} selective "
            f"{s['num_selective']:3d} / {s['num_units']} (dead "
            f"{s['num_dead']}) of {s['num_selective_labels']} labels, mean "
            f"purity {s['mean_purity']:.3f}; shuffled labels: selective "
            f"{s['null']['num_selective']:.1f}, mean purity "
            f"{s['null']['mean_purity']:.3f}")
  return "\n".join(lines)


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
              boxes_of: BoxesFn | None = None,
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
  _check_units(options.vision_units, vision_tower.output["conv4_2"].shape[-1],
               VISION)
  _check_units(options.audio_units, audio_tower.output["conv4_2"].shape[-1],
               AUDIO)
  networks = {TRAINED: avc}
  if random_avc is not None:
    networks[RANDOM] = random_avc
  dataset = example_dataset(config, builder, split, options.max_videos,
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
      "units": unit_figures(avc, config, examples, activations[TRAINED],
                            output_dir, options),
  }
  localizer = localize.Localizer(avc, config.model, config.image, config.audio)
  summary["localization"] = {"pairs": localization_figures(
      localizer, examples, output_dir, options.num_pairs)}
  if boxes_of is not None:
    summary["localization"]["hit_rate"] = localization_hit_rate(
        localizer, examples, boxes_of)
    summary["localization"]["sound_dependence"] = sound_dependence(
        localizer, examples, boxes_of)
    if random_avc is not None:  # what the architecture alone gives
      random_localizer = localize.Localizer(random_avc, config.model,
                                            config.image, config.audio)
      summary["localization"][RANDOM] = {
          "hit_rate": localization_hit_rate(random_localizer, examples,
                                            boxes_of),
          "sound_dependence": sound_dependence(random_localizer, examples,
                                               boxes_of)}
  if labelled:
    report = selectivity(activations, examples, options.purity_k,
                         options.purity_threshold, options.null_repeats,
                         options.random_seed)
    report["description"] = description
    with open(os.path.join(output_dir, "selectivity.json"), "w") as f:
      json.dump(report, f, indent=2)
    summary["selectivity"] = {
        key: value for key, value in report.items() if key not in MODALITIES}
    if "skipped" not in report:
      summary["selectivity"].update({
          modality: {name: {**{k: s[k] for k in _SUMMARY_KEYS},
                            "relative": {k: s["relative"][k]
                                         for k in _SUMMARY_KEYS}}
                     for name, s in report[modality].items()}
          for modality in MODALITIES})
    summary["selectivity_table"] = selectivity_table(report)
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
                      boxes_for: Callable[[Any], BoxesFn | None] | None = None
                      ) -> dict[str, Any]:
  """`visualize` for the latest checkpoint of a training workdir.

  Args:
    workdir: a training workdir.
    output_dir: where the files go.
    dataset: a prepared video dataset (default: the one it trained on).
    data_dir: its TFDS data dir (default: the training config's).
    split: default the config's evaluation split.
    options: see `Options`.
    boxes_for: builder -> `BoxesFn` or None (ground-truth boxes, when the
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
