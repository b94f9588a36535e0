"""esc50: dummy official layout (3 targets x 5 folds + 2 inconsistencies)."""

import pytest
import tensorflow_datasets as tfds

from data_prep import builder_testing
from data_prep import dummy_media
from data_prep import media_builder
from data_prep.esc50 import esc50_dataset_builder


class Esc50Test(builder_testing.GeneratedDummyDataTestCase):
  DATASET_CLASS = esc50_dataset_builder.Builder
  SPLITS = {f"fold{k}": 3 for k in range(1, 6)}
  write_dummy_data = staticmethod(dummy_media.write_esc50)


def test_labels_follow_targets_and_inconsistencies_are_reported(tmp_path):
  dummy_media.write_esc50(tmp_path / "manual")
  builder = esc50_dataset_builder.Builder(data_dir=str(tmp_path / "tfds"))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(tmp_path / "manual")))
  assert builder.info.features["label"].names == list(
      dummy_media.ESC50_CATEGORIES)
  for k in range(1, 6):
    examples = list(tfds.as_numpy(builder.as_dataset(split=f"fold{k}")))
    assert sorted(ex["label"] for ex in examples) == [0, 1, 2]
    for ex in examples:
      # {fold}-{src}-{take}-{target}.wav
      name = ex["clip_id"].decode().split("/")[-1]
      assert name.startswith(f"{k}-") and name.endswith(f"-{ex['label']}.wav")
      assert ex["fold"] == k
  skips = {s.path: s.reason
           for s in media_builder.read_skip_report(builder.data_dir)}
  assert skips == {
      "audio/2-7777-A-1.wav": "listed in meta/esc50.csv but missing",
      "audio/9-unlisted-A-0.wav": "not listed in meta/esc50.csv"}


def test_contradicting_meta_is_an_error(tmp_path):
  rows = [{"target": "0", "category": "dog"},
          {"target": "0", "category": "cat"}]
  with pytest.raises(ValueError, match="target 0 is both 'dog' and 'cat'"):
    esc50_dataset_builder.label_names(rows)
  with pytest.raises(ValueError, match="not 0..1"):
    esc50_dataset_builder.label_names([{"target": "0", "category": "a"},
                                       {"target": "2", "category": "b"}])
