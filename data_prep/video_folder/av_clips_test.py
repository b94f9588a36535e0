"""Acceptance: video_folder over the 20 real clips of ../shared/data/av_clips.

Expected outcome per clip (default config: 4 fps, first 10 s, min 1 s,
silent audio skipped):

  openl3/bento.mp4   skipped, "too short": 0.998 s of audio (< one whole
                     1-second AVC window; its video lasts 1.1 s)
  the 19 others      built: duration within one source frame of
                     min(manifest duration_s, 10 s), audio of that duration
                     x 48000 samples (+-1%), 4 frames per second, short side
                     256. None is silent (the quietest, the 6-channel
                     bigbuckbunny clip, peaks at about -26 dBFS).
  manifest.csv       skipped, "not a video file".

The manifest's duration is the container's; the kept duration is the common
part of audio and video (e.g. sintel_5s: video 5.000 s, audio 5.016 s), so
it may fall short of the manifest by less than one frame.
"""

import csv
import re

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_prep import media_builder
from data_prep.video_folder import video_folder_dataset_builder
from l3_tf.data import video_example
from tests import testing

LIMIT_SECONDS = 10.0
EXPECTED_SKIPS = {
    "openl3/bento.mp4": "too short",
    "manifest.csv": "not a video file",
}

pytestmark = [pytest.mark.real_data, pytest.mark.slow]


def _source_fps(video_column: str) -> float:
  """'h264 298x224 29.97fps' -> 29.97."""
  return float(re.search(r"([\d.]+)fps", video_column).group(1))


@pytest.fixture(scope="module")
def av_clips(tmp_path_factory):
  root = testing.shared_data("av_clips")
  with open(root / "manifest.csv") as f:
    manifest = {row["local_path"]: row for row in csv.DictReader(f)}
  builder = video_folder_dataset_builder.Builder(
      data_dir=str(tmp_path_factory.mktemp("tfds")), num_workers=2)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(root)))
  examples = {}
  for split in builder.info.splits:
    ds = builder.as_dataset(split=split,
                            decoders=video_example.SKIP_FRAME_DECODING)
    for ex in tfds.as_numpy(ds):
      examples[ex["video_id"].decode()] = ex
  skips = {s.path: s.reason
           for s in media_builder.read_skip_report(builder.data_dir)}
  return manifest, examples, skips


def test_all_20_clips_are_accounted_for(av_clips):
  manifest, examples, skips = av_clips
  assert len(manifest) == 20
  assert set(examples) | set(skips) == set(manifest) | {"manifest.csv"}
  assert set(examples).isdisjoint(skips)
  assert set(skips) == set(EXPECTED_SKIPS)
  for path, fragment in EXPECTED_SKIPS.items():
    assert fragment in skips[path], (path, skips[path])
  assert len(examples) == 19


def test_built_clips_have_the_manifest_duration_and_48k_audio(av_clips):
  manifest, examples, _ = av_clips
  for path, ex in examples.items():
    row = manifest[path]
    expected = min(float(row["duration_s"]), LIMIT_SECONDS)
    one_frame = 1.0 / _source_fps(row["video"])
    duration = float(ex["duration_seconds"])
    assert abs(duration - expected) <= one_frame, (path, duration, expected)
    assert ex["audio"].shape[0] == pytest.approx(expected * 48000, rel=0.01)
    assert ex["audio"].shape[0] == round(duration * 48000)
    times = ex["frame_times"]
    assert np.all(np.diff(times) > 0) and times[-1] < duration
    assert abs(times.shape[0] - duration * 4) <= 1, path
    # Frame k is the one displayed at k / 4 s: shown at or before it, after
    # the previous slot (a source that repeats frames, as test.avi's
    # not-coded MPEG-4 frames do, may show a frame older than one period).
    # Only a first frame may start after its slot (test.avi: at 0.04 s).
    slots = np.arange(times.shape[0]) / 4.0
    assert times[0] <= one_frame + 1e-4, path
    assert np.all(times[1:] <= slots[1:] + 1e-4), path
    assert np.all(times[1:] > slots[1:] - 0.25), path


def test_frames_are_jpegs_with_short_side_256(av_clips):
  _, examples, _ = av_clips
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  for path, ex in examples.items():
    first = tf.io.decode_jpeg(ex["frames"][0]).shape
    assert min(first[:2]) == 256 and first[2] == 3, path
