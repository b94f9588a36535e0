"""video_folder: dummy folder of good and bad videos; the bad-input policy.

The dummy data (`data_prep.dummy_media.write_video_folder`) holds one file of
each kind the issue lists: several containers and codecs, portrait, odd-sized,
variable frame rate, 6-channel audio, a 12 s video (cut to 10 s), a video at
the root (label -1), and bad input: no audio stream, no video stream, a
zero-length file, random bytes, a truncated mp4, 0.8 s, silent audio, and
non-video files; a webm cut short is built from its decodable part. Splits by
hash (80/10/10): the 11 usable videos fall 9 / 2 / 0, and the test split's two
files (audio_only.mp4, empty.mp4) are both unusable, so that split is left
out, not fatal.
"""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_prep import builder_testing
from data_prep import dummy_media
from data_prep import video_builder
from data_prep.video_folder import video_folder_dataset_builder

_USABLE = sorted(p for p, why in dummy_media.VIDEO_FOLDER_EXPECTED.items()
                 if why is None)


class VideoFolderTest(builder_testing.GeneratedDummyDataTestCase):
  DATASET_CLASS = video_folder_dataset_builder.Builder
  SPLITS = {"train": 9, "validation": 2}
  write_dummy_data = staticmethod(dummy_media.write_video_folder)


def test_expected_split_counts_follow_from_the_hash():
  counts = {"train": 0, "validation": 0, "test": 0}
  for path in _USABLE:
    counts[video_builder.split_by_hash(path, (0.8, 0.1, 0.1))] += 1
  assert counts == {"train": 9, "validation": 2, "test": 0}
  test_files = [p for p in dummy_media.VIDEO_FOLDER_EXPECTED
                if video_builder.split_by_hash(p, (0.8, 0.1, 0.1)) == "test"]
  assert all(dummy_media.VIDEO_FOLDER_EXPECTED[p] for p in test_files)


def test_split_by_hash_is_stable_and_follows_fractions():
  ids = [f"clip_{i}.mp4" for i in range(4000)]
  splits = [video_builder.split_by_hash(i, (0.8, 0.1, 0.1)) for i in ids]
  assert splits == [video_builder.split_by_hash(i, (0.8, 0.1, 0.1))
                    for i in ids]
  for name, fraction in (("train", 0.8), ("validation", 0.1), ("test", 0.1)):
    assert splits.count(name) / len(ids) == pytest.approx(fraction, abs=0.02)
  assert video_builder.split_by_hash("x", (0.0, 0.0, 1.0)) == "test"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  manual = tmp_path_factory.mktemp("videos")
  expected = dummy_media.write_video_folder(manual)
  data_dir = tmp_path_factory.mktemp("tfds")
  builder = video_folder_dataset_builder.Builder(data_dir=str(data_dir),
                                                 num_workers=2)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual)))
  return builder, expected


def test_every_file_is_built_or_skipped_with_its_reason(built):
  builder, expected = built
  skips = {s.path: s for s in video_builder.read_skip_report(builder.data_dir)}
  examples = {}
  for split in ("train", "validation"):
    for ex in tfds.as_numpy(builder.as_dataset(split=split)):
      examples[ex["video_id"].decode()] = ex
  assert sorted(examples) == _USABLE
  assert set(examples).isdisjoint(skips)
  # The generated-release marker is recorded, not listed as a skipped file.
  assert builder.info.metadata["generated"] is True
  assert set(examples) | set(skips) == set(expected)
  for path, reason in expected.items():
    if reason is not None:
      assert reason in skips[path].reason, (path, skips[path])


def test_examples_follow_the_stored_contract(built):
  builder, _ = built
  names = builder.info.features["label"].names
  assert names == ["dogs", "drums"]
  for split in ("train", "validation"):
    for ex in tfds.as_numpy(builder.as_dataset(split=split)):
      path = ex["video_id"].decode()
      assert ex["source_path"].decode() == path
      label = ex["label"]
      assert label == (names.index(path.split("/")[0]) if "/" in path
                       else -1)
      duration = float(ex["duration_seconds"])
      assert ex["audio"].dtype == np.int16
      assert ex["audio"].shape[0] == round(duration * 48000)
      times = ex["frame_times"]
      assert np.all(np.diff(times) > 0) and times[-1] < duration
      assert ex["frames"].shape[0] == times.shape[0]
      assert min(ex["frames"].shape[1:3]) == 256
      if path == "drums/long_12s.mp4":  # cut to the first 10 s
        assert duration == pytest.approx(10.0)
        assert times.shape[0] == 40
      if path == "dogs/portrait.mp4":
        assert ex["frames"].shape[1:3] == (455, 256)
      if path == "drums/interrupted.webm":  # 3 s written, 60% of the bytes
        assert 1.0 <= duration < 2.5


def test_manual_dir_without_videos_lists_the_expected_paths(tmp_path):
  builder = video_folder_dataset_builder.Builder(data_dir=str(tmp_path))
  manual = tmp_path / "manual"
  manual.mkdir()
  (manual / "README.txt").write_text("no videos here")
  config = tfds.download.DownloadConfig(manual_dir=str(manual))
  with pytest.raises(FileNotFoundError, match="expected these paths") as e:
    builder.download_and_prepare(download_config=config)
  assert f"{manual}/<class>/<video>.mp4" in str(e.value)
  # An empty or absent manual dir: TFDS's own error, naming the dir and the
  # instructions.
  (manual / "README.txt").unlink()
  with pytest.raises(AssertionError, match="sub-folder") as e:
    builder.download_and_prepare(download_config=config)
  assert str(manual) in str(e.value)
