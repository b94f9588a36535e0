"""The AVC input pipeline: stored videos -> batches of correspondence pairs.

Wiring only; the ops live in `l3_tf.data.pairs` (sampling, audio gain),
`l3_tf.data.image_ops` and `l3_tf.data.audio_frontend`. Training:

  TFDS files (shard per input pipeline, file order shuffled with a seed,
  interleaved) -> keep videos that can form a pair -> shuffle videos (seed,
  reshuffled every epoch) -> repeat -> groups of `group_videos` (padded)
  -> draw pairs per group (seed folded with the group index) -> unbatch
  -> per pair, in parallel: decode the one JPEG frame, crop / flip / jitter,
  audio gain -> batch (even size: exactly balanced) -> log-spectrograms of
  the batch -> prefetch.

Evaluation: the same without file shuffling, video shuffling or augmentation
(central crop, gain 1), from a fixed seed, cut to exactly `num_pairs`: the
same balanced set every time for a given dataset, split, seed and size.

Labelled mode (`labelled=True`, the supervised baselines of PAPER.md §5):
the same reading and drawing, but only the positive pairs are kept (a frame
and a 1-second window around it, of one video) and each carries its video's
class label instead of the correspondence label; videos without a label
(-1) are left out.

Each element is `(features, label)` with features `{"image": [b, 224, 224, 3],
"spectrogram": [b, 257, 199, 1]}` and int32 labels `[b]`;
`with_metadata=True` appends a dict of per-pair metadata (video ids, frame
time, window start, gain, ...) for tests and summaries. The model never sees
the metadata.
"""

import hashlib
import os

import tensorflow as tf
import tensorflow_datasets as tfds

from l3_tf.data import audio_frontend
from l3_tf.data import data_service
from l3_tf.data import image_ops
from l3_tf.data import pairs as pairs_lib
from l3_tf.data import video_example
from l3_tf.platform import filesystems

AUTOTUNE = tf.data.AUTOTUNE
# Salt of the per-group seeds, so that pipeline seeds and group seeds differ.
_GROUP_SALT = 0x4C33  # "L3"


class DatasetError(ValueError):
  """The configured dataset cannot feed AVC training or evaluation."""


def load_builder(dataset: str, data_dir: str | None):
  """The prepared TFDS dataset, read from its directory.

  The builder code need not be importable: TFDS reads a prepared dataset
  from `data_dir/<dataset>/<version>/`.

  Raises:
    DatasetError: the dataset is not prepared in `data_dir`, or is not a
      video dataset in the `l3_tf.data.video_example` format.
  """
  filesystems.prepare(data_dir, "data.data_dir")
  try:
    builder = tfds.builder(dataset, data_dir=data_dir)
  except Exception as e:  # DatasetNotFoundError and friends
    hint = "build it first (see README: `tfds build ... --data_dir=...`)"
    folder = os.path.join(data_dir or tfds.core.constants.DATA_DIR, dataset)
    if "/" not in dataset and os.path.isdir(folder):
      prepared = sorted(name for name in os.listdir(folder)
                        if os.path.isdir(os.path.join(folder, name))
                        and not name.startswith("."))
      hint = (f"it has builder configs {prepared}: name one, e.g. "
              f"'{dataset}/{prepared[0]}'") if prepared else hint
    raise DatasetError(
        f"dataset {dataset!r} is not prepared in data_dir={data_dir!r}; "
        f"{hint} [{type(e).__name__}]") from None
  if not builder.info.splits:
    raise DatasetError(
        f"dataset {dataset!r} in data_dir={data_dir!r} has no prepared split; "
        "build it first")
  missing = {"video_id", "frames", "frame_times", "audio"} - set(
      builder.info.features.keys())
  if missing:
    raise DatasetError(
        f"dataset {dataset!r} lacks the video feature(s) {sorted(missing)} "
        "of l3_tf.data.video_example; it is not a video dataset")
  return builder


def check_split(builder, split: str, min_videos: int = 2) -> int:
  """Number of videos of `split`; raises DatasetError when it cannot serve."""
  splits = builder.info.splits
  if split not in splits:
    raise DatasetError(
        f"dataset {builder.name!r} has no split {split!r}; it has "
        f"{sorted(splits.keys())}")
  num = splits[split].num_examples
  if num < min_videos:
    raise DatasetError(
        f"split {split!r} of {builder.name!r} has {num} video(s): negatives "
        f"need at least {min_videos} different videos")
  return num


def derive_seed(*parts: int) -> int:
  """A 63-bit seed from integers (stable across runs and machines)."""
  digest = hashlib.sha256(",".join(str(int(p)) for p in parts).encode()).digest()
  return int.from_bytes(digest[:8], "little") >> 1


def check_labelled(builder) -> int:
  """Number of classes of a labelled video dataset.

  Raises:
    DatasetError: the dataset has no `label` feature (e.g. flickr_soundnet).
  """
  if "label" not in builder.info.features.keys():
    raise DatasetError(
        f"dataset {builder.name!r} has no labels: the supervised baselines "
        "need a labelled video dataset (kinetics_sounds, synthetic_av, "
        "video_folder with class sub-folders)")
  return builder.info.features["label"].num_classes


def read_videos(builder, split: str,
                input_context: tf.distribute.InputContext | None = None,
                shuffle_files: bool = False,
                seed: int | None = None,
                extra_features: tuple[str, ...] = ()) -> tf.data.Dataset:
  """Videos of a split (frames still JPEG-encoded) for one input pipeline.

  Elements hold video_id, frames, frame_times, audio, num_frames and
  num_samples, plus the stored features named in `extra_features` (e.g.
  "label": int64, -1 for an unlabelled video).

  With several input pipelines, each reads its own part: whole files when the
  split has at least as many files as pipelines, otherwise an even split of
  the examples (tiny datasets).
  """
  read_kwargs = {}
  if input_context is not None and input_context.num_input_pipelines > 1:
    pipelines = input_context.num_input_pipelines
    if builder.info.splits[split].num_shards >= pipelines:
      read_kwargs["input_context"] = input_context
    else:
      split = tfds.even_splits(split, n=pipelines)[
          input_context.input_pipeline_id]
  read_config = tfds.ReadConfig(shuffle_seed=seed, **read_kwargs)
  videos = builder.as_dataset(split=split, shuffle_files=shuffle_files,
                              read_config=read_config,
                              decoders=video_example.SKIP_FRAME_DECODING)

  def select(v):
    return {"video_id": v["video_id"], "frames": v["frames"],
            "frame_times": v["frame_times"], "audio": v["audio"],
            "num_frames": tf.size(v["frames"], out_type=tf.int64),
            "num_samples": tf.size(v["audio"], out_type=tf.int64),
            **{key: v[key] for key in extra_features}}

  return videos.map(select, num_parallel_calls=AUTOTUNE)


def can_form_pairs(video, audio_params) -> tf.Tensor:
  """True when a video holds a full clip of audio and an eligible frame.

  Builders already skip (and report) clips shorter than one window; this
  guard keeps a stray one from stopping a run.
  """
  eligible = pairs_lib.eligible_frames(video["frame_times"],
                                      video["num_samples"], audio_params)
  same_count = tf.equal(video["num_frames"],
                        tf.size(video["frame_times"], out_type=tf.int64))
  return tf.reduce_any(eligible) & same_count


def _usable_videos(builder, split: str, config, labelled: bool = False,
                   **read_args) -> tf.data.Dataset:
  """`read_videos`, keeping the videos that can form pairs.

  With `labelled`, the videos carry their "label" and the unlabelled (-1)
  ones are left out (the supervised baselines).

  Raises:
    DatasetError: `labelled` and the dataset has no labels.
  """
  if labelled:
    check_labelled(builder)
  videos = read_videos(builder, split,
                       extra_features=("label",) if labelled else (),
                       **read_args)
  if labelled:
    videos = videos.filter(lambda v: v["label"] >= 0)
  return videos.filter(lambda v: can_form_pairs(v, config.audio))


def pairs_from_videos(videos: tf.data.Dataset, config, seed: int,
                      training: bool, labelled: bool = False
                      ) -> tf.data.Dataset:
  """Unbatched pairs (the dicts of `pairs.draw_pairs`) from a video stream.

  With `labelled` (videos of `_usable_videos(labelled=True)`), only the
  positives are kept and their "label" is the int32 class label of their
  video.
  """
  group_size = config.data.group_videos
  # Padded, not ragged: a ragged_batch of multi-megabyte videos took 42 ms
  # per group, a padded one ~5 ms (commit e5e42d5). Padding costs little
  # (videos are mostly of similar length).
  groups = videos.padded_batch(group_size, drop_remainder=True)
  # `seed` may be a tensor (a per-worker seed of the tf.data service).
  base_seed = tf.stack([tf.cast(seed, tf.int64),
                        tf.constant(_GROUP_SALT, tf.int64)])

  # Plain graph code: skipping AutoGraph's conversion saves seconds of
  # pipeline start-up.
  @tf.autograph.experimental.do_not_convert
  def draw(index, group):
    group_seed = tf.random.experimental.stateless_fold_in(base_seed, index)
    pairs = pairs_lib.draw_pairs(
        group["video_id"], group["frames"], group["frame_times"],
        group["num_frames"], group["audio"], group["num_samples"], group_seed,
        config.data.pairs_per_video, config.audio)
    if labelled:
      # Video i owns rows [2k*i, 2k*(i+1)) (see `pairs.draw_pairs`).
      class_label = tf.repeat(tf.cast(group["label"], tf.int32),
                              2 * config.data.pairs_per_video)  # [P]
      positive = tf.equal(pairs["label"], pairs_lib.POSITIVE)  # [P]
      pairs = {key: tf.boolean_mask(value, positive)
               for key, value in dict(pairs, label=class_label).items()}
    return pairs

  del training  # sampling is the same; augmentation differs (`make_example`)
  return groups.enumerate().map(draw, num_parallel_calls=AUTOTUNE).unbatch()


def make_example(pair, config, training: bool):
  """One drawn pair -> (features, label, metadata): decode and augment.

  Features are {"image": [224, 224, 3], "waveform": [48000]};
  `add_spectrogram` turns batched waveforms into spectrograms (one STFT per
  batch rather than one per pair).
  """
  image_seed, gain_seed = tf.unstack(
      tf.random.experimental.stateless_split(pair["seed"], 2))
  waveform = tf.cast(pair["waveform"], tf.float32) / video_example.AUDIO_SCALE
  # Decoding only the crop window: the pixels of a full decode, cropped.
  if training:
    image = image_ops.preprocess_jpeg_for_train(pair["frame"], image_seed,
                                                config.image)
    waveform, gain = pairs_lib.random_gain(
        waveform, config.train.audio_gain_max, gain_seed)  # [48000]
  else:
    image = image_ops.preprocess_jpeg_for_eval(pair["frame"], config.image)
    gain = tf.constant(1.0)
  metadata = {key: pair[key] for key in (
      "frame_video_id", "audio_video_id", "frame_index", "frame_time",
      "audio_start_sample", "audio_num_samples")}
  metadata["gain"] = gain
  metadata["peak_after_gain"] = tf.reduce_max(tf.abs(waveform))
  features = {"image": image,  # [224, 224, 3] in [-1, 1]
              "waveform": waveform}  # [48000] in [-1, 1]
  return features, pair["label"], metadata


def add_spectrogram(features, audio_params):
  """{"image", "waveform" [b, 48000]} -> {"image", "spectrogram" [b, 257, 199, 1]}."""
  return {"image": features["image"],
          "spectrogram": audio_frontend.log_spectrogram(features["waveform"],
                                                        audio_params)}


def _finish(examples: tf.data.Dataset, config, batch_size: int, training: bool,
            with_metadata: bool) -> tf.data.Dataset:
  batches = examples.batch(batch_size, drop_remainder=training)

  def finish(features, label, metadata):
    features = add_spectrogram(features, config.audio)
    return (features, label, metadata) if with_metadata else (features, label)

  batches = batches.map(tf.autograph.experimental.do_not_convert(finish),
                        num_parallel_calls=AUTOTUNE)
  return batches.prefetch(AUTOTUNE)


def train_dataset(config, batch_size: int,
                  input_context: tf.distribute.InputContext | None = None,
                  seed: int = 0, with_metadata: bool = False,
                  builder=None, labelled: bool = False,
                  service_address: str | None = None) -> tf.data.Dataset:
  """The endless, shuffled, augmented training stream of one input pipeline.

  Args:
    config: an `l3_tf.training.config.Config`.
    batch_size: pairs per batch (per replica under a strategy); even.
    input_context: from `strategy.distribute_datasets_from_function`.
    seed: the pipeline seed (see `l3_tf.training.train`: derived from the config seed
      and the step the run resumed from, so a resumed run draws new pairs).
    with_metadata: append the per-pair metadata dict to each element.
    builder: the TFDS builder (default: `load_builder` from the config).
    labelled: frames and windows with their video's class label (module
      docstring); any batch size.
    service_address: a tf.data service dispatcher ("grpc://host:port"):
      the pipeline is registered with it and runs on its workers, each
      shuffling videos and drawing pairs with a seed of its own
      (`l3_tf.data.data_service.per_worker_seed`); the result reads their
      batches. None: the pipeline runs in this process.
  """
  if batch_size % 2 and not labelled:
    raise ValueError(f"batch_size={batch_size} must be even so that each "
                     "batch holds as many positives as negatives")
  builder = builder or load_builder(config.data.dataset, config.data.data_dir)
  pipeline_id = input_context.input_pipeline_id if input_context else 0
  seed = derive_seed(seed, pipeline_id)
  videos = _usable_videos(builder, config.data.train_split, config, labelled,
                          input_context=input_context, shuffle_files=True,
                          seed=seed)

  def seeded(seed):  # an int, or an int64 tensor under the data service
    # Shuffle inside each epoch, then repeat: a video appears once per epoch,
    # so a group of >= 3 consecutive videos always holds >= 2 distinct ones.
    shuffled = videos.shuffle(config.data.shuffle_videos, seed=seed,
                              reshuffle_each_iteration=True).repeat()
    pairs = pairs_from_videos(shuffled, config, seed, training=True,
                              labelled=labelled)
    examples = pairs.map(
        tf.autograph.experimental.do_not_convert(
            lambda p: make_example(p, config, training=True)),
        num_parallel_calls=AUTOTUNE)
    return _finish(examples, config, batch_size, training=True,
                   with_metadata=with_metadata)

  if service_address is None:
    return seeded(seed)
  return data_service.distribute(data_service.per_worker_seed(seed, seeded),
                                 service_address)


def eval_dataset(config, split: str | None = None, num_pairs: int | None = None,
                 batch_size: int | None = None, with_metadata: bool = False,
                 builder=None, labelled: bool = False) -> tf.data.Dataset:
  """The fixed, balanced, unaugmented evaluation set of a split.

  Videos are read in their stored order and cycled; pairs are drawn from
  `config.data.eval_seed` and cut to exactly `num_pairs` (even), half
  positive. Same dataset, split, seed and size: same pairs. With
  `labelled`, `num_pairs` class-labelled examples (any number) instead.
  """
  split = split or config.data.eval_split
  num_pairs = num_pairs or config.data.eval_num_pairs
  if num_pairs % 2 and not labelled:
    raise ValueError(f"eval num_pairs={num_pairs} must be even (balanced set)")
  builder = builder or load_builder(config.data.dataset, config.data.data_dir)
  check_split(builder, split)
  videos = _usable_videos(builder, split, config, labelled,
                          shuffle_files=False).repeat()
  pairs = pairs_from_videos(videos, config, config.data.eval_seed,
                            training=False, labelled=labelled).take(num_pairs)
  examples = pairs.map(
      tf.autograph.experimental.do_not_convert(
          lambda p: make_example(p, config, training=False)),
      num_parallel_calls=AUTOTUNE)
  return _finish(examples, config, batch_size or config.data.eval_batch_size,
                 training=False, with_metadata=with_metadata)
