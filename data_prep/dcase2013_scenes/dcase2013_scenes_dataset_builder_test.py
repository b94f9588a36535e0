"""dcase2013_scenes: dummy train/test folders (3 scenes, 2 + 1 clips each)."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_prep import builder_testing
from data_prep import dummy_media
from data_prep import media_builder
from data_prep.dcase2013_scenes import dcase2013_scenes_dataset_builder as lib


class Dcase2013ScenesTest(builder_testing.GeneratedDummyDataTestCase):
  DATASET_CLASS = lib.Builder
  SPLITS = {"train": 6, "test": 3}
  write_dummy_data = staticmethod(dummy_media.write_dcase2013)


def test_labels_from_file_names_and_stereo_downmix(tmp_path):
  dummy_media.write_dcase2013(tmp_path / "manual")
  builder = lib.Builder(data_dir=str(tmp_path / "tfds"))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(tmp_path / "manual")))
  names = builder.info.features["label"].names
  assert names == list(lib.SCENES)
  for split in ("train", "test"):
    for ex in tfds.as_numpy(builder.as_dataset(split=split)):
      name = ex["clip_id"].decode().split("/")[-1]
      assert name.startswith(names[ex["label"]])
      audio = ex["audio"].astype(np.float32) / 32768
      assert audio.shape == (24000,)
      # Mono = the mean of the two channels: both pitches, equal parts.
      k = ("bus", "office", "park").index(names[ex["label"]])
      spectrum = np.abs(np.fft.rfft(audio))
      freqs = np.fft.rfftfreq(24000, 1 / 48000)
      left = spectrum[np.argmin(np.abs(freqs - 300 * (k + 1)))]
      right = spectrum[np.argmin(np.abs(freqs - 310 * (k + 1)))]
      assert left == pytest.approx(right, rel=0.1)
  skips = media_builder.read_skip_report(builder.data_dir)
  assert [s.path for s in skips] == ["scenes_stereo/readme.txt"]


def test_missing_test_set_lists_the_expected_path(tmp_path):
  (tmp_path / "scenes_stereo").mkdir()
  dummy_media.write_audio(tmp_path / "scenes_stereo" / "bus01.wav")
  builder = lib.Builder(data_dir=str(tmp_path / "tfds"))
  with pytest.raises(FileNotFoundError,
                     match="scenes_stereo_testset/bus01.wav"):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(tmp_path)))
