"""urbansound8k: dummy release (10 folds x 2 clips in odd wav formats, bad
files) and a build with a fold missing from disk."""

import shutil

import av
import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_prep import builder_testing
from data_prep import dummy_media
from data_prep import generated
from data_prep import media_builder
from data_prep.urbansound8k import urbansound8k_dataset_builder as lib


class UrbanSound8kTest(builder_testing.GeneratedDummyDataTestCase):
  DATASET_CLASS = lib.Builder
  SPLITS = {f"fold{k}": 2 for k in range(1, 11)}
  write_dummy_data = staticmethod(dummy_media.write_urbansound8k)


def _build(tmp_path, manual):
  builder = lib.Builder(data_dir=str(tmp_path / "tfds"))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual)))
  return builder


def _examples(builder, split):
  return list(tfds.as_numpy(builder.as_dataset(split=split)))


def test_every_wav_format_decodes_with_its_metadata(tmp_path):
  manual = tmp_path / "manual"
  dummy_media.write_urbansound8k(manual)
  # The dummy data holds every width and rate the issue names.
  bad = {p.split("/")[-1] for p in dummy_media.US8K_SKIPS}
  formats = set()
  for path in (manual / "audio").glob("fold*/*.wav"):
    if path.name not in bad:
      with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        formats.add((stream.codec_context.name, stream.rate,
                      stream.channels))
  assert {c for c, _, _ in formats} == {"pcm_u8", "pcm_s16le", "pcm_s24le",
                                        "pcm_s32le", "pcm_f32le"}
  assert min(r for _, r, _ in formats) == 8000
  assert max(r for _, r, _ in formats) == 192000
  assert {ch for _, _, ch in formats} == {1, 2}

  builder = _build(tmp_path, manual)
  assert builder.info.features["label"].names == list(
      dummy_media.US8K_CLASSES)
  assert builder.info.metadata["all_folds_built"] is True
  assert builder.info.metadata["folds_built"] == list(range(1, 11))
  assert builder.info.metadata["generated"] is True  # dummy_media's marker
  rows = {r["slice_file_name"]: r for r in lib.read_meta(
      manual / "metadata" / lib.CSV_NAME)}
  for k in range(1, 11):
    for ex in _examples(builder, f"fold{k}"):
      name = ex["clip_id"].decode()
      row = rows[name]
      assert ex["source_path"].decode() == f"audio/fold{k}/{name}"
      assert ex["fold"] == k == row["fold"]
      assert ex["fsid"] == row["fsID"]
      assert ex["salience"] == row["salience"]
      assert ex["start_seconds"] == pytest.approx(row["start"])
      assert ex["end_seconds"] == pytest.approx(row["end"])
      assert ex["label"] == row["classID"]
      # Decoded at 48 kHz mono whatever the file's rate, width and channels:
      # the length is the written duration, the pitch that of its class.
      seconds = row["end"] - row["start"]
      assert ex["audio"].shape[0] == pytest.approx(48000 * seconds, abs=48)
      audio = ex["audio"].astype(np.float64) / 32768
      spectrum = np.abs(np.fft.rfft(audio))
      peak_hz = np.argmax(spectrum) * 48000 / audio.size
      assert peak_hz == pytest.approx(
          dummy_media.us8k_frequency(row["classID"]), abs=48000 / audio.size)
      assert 0.3 < np.abs(audio).max() < 0.6
  skips = {s.path: s.reason
           for s in media_builder.read_skip_report(builder.data_dir)}
  assert set(skips) == set(dummy_media.US8K_SKIPS)
  for path, fragment in dummy_media.US8K_SKIPS.items():
    assert fragment in skips[path], (path, skips[path])


def test_missing_fold_is_named_and_the_build_says_not_official(tmp_path):
  manual = tmp_path / "UrbanSound8K"  # the archive's top folder is accepted
  dummy_media.write_urbansound8k(manual)
  shutil.rmtree(manual / "audio" / "fold7")
  # The csv beside audio/ (as some copies have it) is found too.
  (manual / "metadata" / lib.CSV_NAME).rename(manual / lib.CSV_NAME)
  builder = _build(tmp_path, tmp_path)
  assert sorted(builder.info.splits) == sorted(
      f"fold{k}" for k in range(1, 11) if k != 7)
  assert builder.info.metadata["folds_missing"] == [7]
  assert builder.info.metadata["all_folds_built"] is False
  skips = {s.path: s.reason
           for s in media_builder.read_skip_report(builder.data_dir)}
  assert "fold 7 missing from disk (2 clips listed" in skips["audio/fold7/"]
  assert lib.NOT_OFFICIAL in skips["audio/fold7/"]
  # The marker found inside the top folder too.
  assert builder.info.metadata["generated"] is True
  # Read back from disk in a new builder: the metadata was saved.
  reloaded = lib.Builder(data_dir=str(tmp_path / "tfds"))
  assert reloaded.info.metadata["folds_missing"] == [7]
  assert reloaded.info.metadata["generated"] is True


def test_same_layout_without_the_marker_is_not_generated(tmp_path):
  manual = tmp_path / "manual"
  dummy_media.write_urbansound8k(manual)
  (manual / generated.MARKER).unlink()
  builder = _build(tmp_path, manual)
  assert builder.info.metadata["generated"] is False
  assert lib.Builder(data_dir=str(tmp_path / "tfds")).info.metadata[
      "generated"] is False


def test_missing_release_lists_the_expected_paths(tmp_path):
  (tmp_path / "audio").mkdir()
  with pytest.raises(FileNotFoundError, match="metadata/UrbanSound8K.csv"):
    _build(tmp_path, tmp_path)


def test_bad_metadata_names_the_line(tmp_path):
  meta = tmp_path / "UrbanSound8K.csv"
  header = ",".join(lib.COLUMNS)
  meta.write_text(f"{header}\na.wav,1,0,1,1,11,0,dog\n")
  with pytest.raises(ValueError, match="line 2: fold=11"):
    lib.read_meta(meta)
  meta.write_text(f"{header}\na.wav,1,0,1,1,1,0,dog\na.wav,2,0,1,1,2,0,dog\n")
  with pytest.raises(ValueError, match="line 3: 'a.wav' is listed again"):
    lib.read_meta(meta)
  meta.write_text("slice_file_name,fold\na.wav,1\n")
  with pytest.raises(ValueError, match="missing the columns"):
    lib.read_meta(meta)
