"""Frame-and-sound examples of a video dataset, for analysis and retrieval.

An *example* is one stored frame of a video and the 1-second window of the
same video's sound centred on it (moved inside the audio near the ends; it
always contains the frame's time), read with the AVC input pipeline's video
reader and front ends (`input_pipeline.read_videos`,
`image_ops.preprocess_for_eval`, `input_pipeline.add_spectrogram`): what
`l3_tf.analysis.visualize` draws and `l3_tf.evaluation.retrieval` ranks.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from l3_tf.data import image_ops
from l3_tf.data import input_pipeline
from l3_tf.data import pairs as pairs_lib
from l3_tf.data import video_example


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
