"""Acceptance: ESC-10 from ../shared/data re-cut into the UrbanSound8K layout
(`recut.py`), built by the UrbanSound8K builder.

Real sound in every wav width and rate, slices under 1 s, 10 folds that
keep each source recording (fsID) in one fold.
"""

import collections
import csv

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_prep import media_builder
from data_prep.urbansound8k import recut
from data_prep.urbansound8k import urbansound8k_dataset_builder as lib
from tests import testing

pytestmark = [pytest.mark.real_data, pytest.mark.slow]


def test_recut_esc10_builds_in_10_folds_keeping_recordings_apart(tmp_path):
  manual = tmp_path / "us8k"
  counts = recut.recut(str(testing.shared_data("esc10")), str(manual))
  assert sorted(counts, key=lambda s: int(s[4:])) == [
      f"fold{k}" for k in range(1, 11)]
  rows = list(csv.DictReader(open(manual / "metadata" / lib.CSV_NAME)))
  folds_of = collections.defaultdict(set)
  for row in rows:
    folds_of[row["fsID"]].add(row["fold"])
  assert all(len(f) == 1 for f in folds_of.values())
  seconds = np.array([float(r["end"]) - float(r["start"]) for r in rows])
  assert seconds.max() <= recut.SLICE_SECONDS + 1e-3
  assert (seconds < 1).sum() > 0  # the protocol's padding meets real sound

  builder = lib.Builder(data_dir=str(tmp_path / "tfds"), num_workers=2)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual)))
  assert {s: builder.info.splits[s].num_examples for s in counts} == counts
  assert media_builder.read_skip_report(builder.data_dir) == []
  assert builder.info.metadata["all_folds_built"] is True
  assert builder.info.features["label"].names[0] == "Dog bark"
  for example in tfds.as_numpy(builder.as_dataset(split="fold1").take(20)):
    row = next(r for r in rows
               if r["slice_file_name"] == example["clip_id"].decode())
    expected = float(row["end"]) - float(row["start"])
    assert example["audio"].shape[0] == pytest.approx(48000 * expected,
                                                      abs=48)
    assert np.abs(example["audio"]).max() > 0
