"""kinetics_sounds: dummy CSVs and clips; class filtering and the list file."""

import pytest
import tensorflow_datasets as tfds

from data_prep import builder_testing
from data_prep import dummy_media
from data_prep import media_builder
from data_prep.kinetics_sounds import kinetics_sounds_dataset_builder as lib


class KineticsSoundsTest(builder_testing.GeneratedDummyDataTestCase):
  DATASET_CLASS = lib.Builder
  SPLITS = {"train": 3, "validation": 2, "test": 1}
  write_dummy_data = staticmethod(dummy_media.write_kinetics)


def test_class_list_has_the_papers_34_classes():
  names = lib.read_class_list(lib.CLASS_LIST)
  assert len(names) == 34
  assert {"playing drums", "tap dancing", "bowling", "fingerpicking"} <= set(
      names)


def test_clip_name():
  assert lib.clip_name("abc", "10", "20") == "abc_000010_000020"
  assert lib.clip_name("abc", "5.0", "15.0") == "abc_000005_000015"


def test_filtering_skips_and_a_replaced_class_list(tmp_path):
  manual = tmp_path / "manual"
  dummy_media.write_kinetics(manual)
  builder = lib.Builder(data_dir=str(tmp_path / "tfds"))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual)))
  ids = {split: sorted(ex["video_id"].decode() for ex in
                       tfds.as_numpy(builder.as_dataset(split=split)))
         for split in ("train", "validation", "test")}
  assert ids == {
      "train": ["drumsAAAAAA_000010_000020", "drumsBBBBBB_000000_000010",
                "tapCCCCCCCC_000005_000015"],
      "validation": ["drumsFFFFFF_000000_000010", "tapGGGGGGGG_000003_000013"],
      "test": ["bowlHHHHHHH_000000_000010"]}
  skips = media_builder.read_skip_report(builder.data_dir)
  assert [(s.path, s.split) for s in skips] == [
      ("bowlDDDDDDD_000030_000040.mp4", "train")]
  assert "clip not found" in skips[0].reason

  # A user's own list: only two classes, in their order.
  custom = tmp_path / "my_classes.txt"
  custom.write_text("# mine\ntap dancing\nbowling\n")
  config = lib.KineticsSoundsConfig(name="mine", class_list=str(custom))
  mine = lib.Builder(data_dir=str(tmp_path / "tfds"), config=config)
  mine.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual)))
  assert mine.info.features["label"].names == ["tap dancing", "bowling"]
  assert mine.info.splits["train"].num_examples == 1
  assert mine.info.splits["validation"].num_examples == 1
  assert mine.info.splits["test"].num_examples == 1


def test_missing_csv_lists_the_expected_paths(tmp_path):
  (tmp_path / "clip.mp4").write_bytes(b"")
  builder = lib.Builder(data_dir=str(tmp_path / "tfds"))
  with pytest.raises(FileNotFoundError, match="train.csv"):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(tmp_path)))
