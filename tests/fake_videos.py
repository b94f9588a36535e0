"""A tiny video dataset in the stored contract format (`l3_tf.data.video_example`).

Written straight as examples (small JPEG frames, int16 audio), with no video
decoding, so that the sampler and the training loop are tested in seconds.
Every video's audio is seeded noise, so any 1-second window identifies its
start sample; the edge cases of the sampler are spelled out per video:

  train  fake_t0 .. fake_t5  3 s of audio, frames at 4 fps over 0..3 s
                             (the frame at t = 3.0 admits exactly one window)
         fake_t6             exactly 1 s of audio: only window start 0
         fake_t7             frames from 0.1 s to 4 s over 2.5 s of audio
                             (late frames are ineligible); full-scale audio
         fake_t8             0.5 s of audio: cannot form a pair
         fake_t9             frames only after the audio ends: no pair
  validation  fake_v0 .. fake_v2, test  fake_s0 .. fake_s3   like fake_t0
"""

import numpy as np
import tensorflow_datasets as tfds

from l3_tf.data import video_example

SR = video_example.SAMPLE_RATE_HZ
UNUSABLE_TRAIN_IDS = ("fake_t8", "fake_t9")


def _video(video_id: str, seed: int, audio_seconds: float,
           frame_times: np.ndarray, full_scale: bool = False,
           size: tuple[int, int] = (48, 64)):
  rng = np.random.default_rng(seed)
  num = int(round(audio_seconds * SR))
  if full_scale:
    audio = rng.choice(np.array([-32768, 32767], np.int16), num)
  else:
    audio = np.clip(rng.normal(0, 3000, num), -32768, 32767).astype(np.int16)
  frames = []
  for index in range(len(frame_times)):
    frame = rng.integers(0, 256, (*size, 3)).astype(np.uint8)
    frame[:8, :8] = (seed * 20) % 256  # a per-video mark
    frames.append(frame)
  example = {
      "video_id": video_id,
      "source_path": f"{video_id}.mp4",
      "frames": frames,
      "frame_times": np.asarray(frame_times, np.float32),
      "audio": audio,
      "duration_seconds": np.float32(audio_seconds),
  }
  return video_id, example


def videos(split: str):
  """(key, example) pairs of one split, in a fixed order."""
  if split == "train":
    for k in range(6):
      yield _video(f"fake_t{k}", k, 3.0, np.arange(13) / 4.0,
                   size=(48, 64) if k % 2 else (64, 48))
    yield _video("fake_t6", 6, 1.0, np.arange(6) / 4.0)
    yield _video("fake_t7", 7, 2.5, 0.1 + np.arange(16) / 4.0, full_scale=True)
    yield _video("fake_t8", 8, 0.5, np.arange(2) / 4.0)
    yield _video("fake_t9", 9, 1.5, np.array([2.0, 2.25]))
  else:
    prefix, count, offset = {"validation": ("fake_v", 3, 20),
                             "test": ("fake_s", 4, 30)}[split]
    for k in range(count):
      yield _video(f"{prefix}{k}", offset + k, 3.0, np.arange(13) / 4.0)


class FakeAvVideos(tfds.core.GeneratorBasedBuilder):
  """The fake videos above, one split per call of `videos`."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Test fixture."}

  def _info(self):
    return tfds.core.DatasetInfo(builder=self,
                                 features=video_example.video_features())

  def _split_generators(self, dl_manager):
    del dl_manager
    return {split: self._generate_examples(split)
            for split in ("train", "validation", "test")}

  def _generate_examples(self, split):
    yield from videos(split)


NAME = FakeAvVideos.name  # "fake_av_videos"


def build(data_dir: str) -> str:
  """Prepares the dataset under `data_dir`; returns the dataset name."""
  FakeAvVideos(data_dir=str(data_dir)).download_and_prepare(
      file_format="tfrecord",
      download_config=tfds.download.DownloadConfig(verify_ssl=False))
  return NAME


def stored(split: str) -> dict[str, dict]:
  """The raw examples of a split by video id (frames as numpy arrays)."""
  return {key: example for key, example in videos(split)}
