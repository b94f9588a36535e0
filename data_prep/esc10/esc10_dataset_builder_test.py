"""esc10: dummy release (3 classes x 5 folds x 2 clips + 2 bad files)."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_prep import builder_testing
from data_prep import dummy_media
from data_prep import media_builder
from data_prep.esc10 import esc10_dataset_builder


class Esc10Test(builder_testing.GeneratedDummyDataTestCase):
  DATASET_CLASS = esc10_dataset_builder.Builder
  SPLITS = {f"fold{k}": 6 for k in range(1, 6)}
  write_dummy_data = staticmethod(dummy_media.write_esc10)


def test_labels_folds_audio_and_skips(tmp_path):
  manual = tmp_path / "ESC-10-master"  # the zip's top folder is accepted
  manual.mkdir()
  dummy_media.write_esc10(manual)
  builder = esc10_dataset_builder.Builder(data_dir=str(tmp_path / "tfds"))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(tmp_path)))
  names = builder.info.features["label"].names
  assert names == ["Dog bark", "Rain", "Sea waves"]
  assert builder.info.metadata["generated"] is True  # ESC-10-master/'s marker
  for k in range(1, 6):
    for ex in tfds.as_numpy(builder.as_dataset(split=f"fold{k}")):
      assert ex["fold"] == k
      path = ex["clip_id"].decode()
      assert path.startswith(dummy_media.ESC10_CLASSES[ex["label"]] + "/")
      assert path.split("/")[1].startswith(f"{k}-")
      assert ex["audio"].dtype == np.int16
      assert ex["audio"].shape[0] == pytest.approx(24000, abs=500)
      assert ex["duration_seconds"] == pytest.approx(ex["audio"].shape[0] / 48000)
  skips = {s.path: s.reason
           for s in media_builder.read_skip_report(builder.data_dir)}
  assert set(skips) == {"002 - Rain/3-999-A.ogg", "003 - Sea waves/notes.txt"}
  assert "not an audio file" in skips["003 - Sea waves/notes.txt"]


def test_missing_release_lists_the_expected_paths(tmp_path):
  (tmp_path / "something.txt").write_text("x")
  builder = esc10_dataset_builder.Builder(data_dir=str(tmp_path / "tfds"))
  with pytest.raises(FileNotFoundError, match="001 - Dog bark/1-100032-A.ogg"):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(tmp_path)))
