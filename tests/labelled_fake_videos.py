"""A tiny labelled video dataset in the stored contract format.

Three classes; a video of class k has frames of one colour per class (plus
noise) and a tone of one pitch per class, so the class is in every frame and
in every 1-second window. Written straight as examples (no video decoding):
seconds to build. 9 train videos (3 per class), 3 validation, 3 test, plus
one unlabelled (-1) train video that labelled pipelines must leave out.
"""

import numpy as np
import tensorflow_datasets as tfds

from l3_tf.data import video_example
from tests import fake_videos

SR = video_example.SAMPLE_RATE_HZ
CLASSES = ("red_low", "green_mid", "blue_high")
_COLOURS = ((200, 40, 40), (40, 200, 40), (40, 40, 200))
_PITCHES = (300.0, 900.0, 2700.0)
UNLABELLED_ID = "lab_train_unlabelled"


def _video(video_id: str, label: int, seed: int, seconds: float = 3.0):
  rng = np.random.default_rng(seed)
  t = np.arange(int(seconds * SR)) / SR
  pitch = _PITCHES[max(label, 0)] * rng.uniform(0.95, 1.05)
  audio = 0.3 * np.sin(2 * np.pi * pitch * t) + 0.02 * rng.standard_normal(t.size)
  frame_times = np.arange(int(seconds * 4) + 1) / 4.0
  frames = []
  for _ in frame_times:
    frame = rng.integers(0, 50, (48, 64, 3))
    frame[8:40, 8:56] = _COLOURS[max(label, 0)]
    frames.append(frame.astype(np.uint8))
  return video_id, {
      "video_id": video_id,
      "source_path": f"{video_id}.mp4",
      "label": label,
      "frames": frames,
      "frame_times": frame_times.astype(np.float32),
      "audio": video_example.audio_to_int16(audio),
      "duration_seconds": np.float32(seconds),
  }


def videos(split: str):
  """(key, example) pairs of a split, in a fixed order."""
  per_class = {"train": 3, "validation": 1, "test": 1}[split]
  offset = {"train": 0, "validation": 100, "test": 200}[split]
  for label in range(len(CLASSES)):
    for k in range(per_class):
      seed = offset + 10 * label + k
      yield _video(f"lab_{split}_{label}_{k}", label, seed)
  if split == "train":
    yield _video(UNLABELLED_ID, -1, 999)


def label_of(video_id: str) -> int:
  return -1 if video_id == UNLABELLED_ID else int(video_id.split("_")[2])


class LabelledFakeVideos(fake_videos.FakeAvVideos):
  """The labelled fake videos above (the splits of `fake_videos`)."""

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        features=video_example.video_features(label_names=list(CLASSES)))

  def _generate_examples(self, split):
    yield from videos(split)


NAME = LabelledFakeVideos.name  # "labelled_fake_videos"


def build(data_dir: str) -> str:
  """Prepares the dataset under `data_dir`; returns its name."""
  LabelledFakeVideos(data_dir=str(data_dir)).download_and_prepare(
      file_format="tfrecord")
  return NAME
