"""Acceptance: esc10 from ../shared/data/esc10 (the stand-alone release).

400 examples, 10 classes x 40, folds 1-5 with 80 each (8 per class), every
clip mono 48 kHz: ~5 s, six clips between 3.6 and 7.2 s (the data README).
"""

import collections

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_prep import media_builder
from data_prep.esc10 import esc10_dataset_builder
from tests import testing

pytestmark = [pytest.mark.real_data, pytest.mark.slow]


def test_esc10_builds_400_clips_in_5_folds_of_80(tmp_path):
  root = testing.shared_data("esc10")
  builder = esc10_dataset_builder.Builder(data_dir=str(tmp_path),
                                          num_workers=2)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(root)))
  names = builder.info.features["label"].names
  assert names == ["Dog bark", "Rain", "Sea waves", "Baby cry", "Clock tick",
                   "Person sneeze", "Helicopter", "Chainsaw", "Rooster",
                   "Fire crackling"]
  per_class = collections.Counter()
  durations = []
  for k in range(1, 6):
    split = f"fold{k}"
    assert builder.info.splits[split].num_examples == 80
    per_fold_class = collections.Counter()
    for ex in tfds.as_numpy(builder.as_dataset(split=split)):
      assert ex["fold"] == k
      assert ex["clip_id"].decode().split("/")[1].startswith(f"{k}-")
      per_fold_class[ex["label"]] += 1
      per_class[ex["label"]] += 1
      assert ex["audio"].dtype == np.int16
      assert np.abs(ex["audio"]).max() > 0
      durations.append(float(ex["duration_seconds"]))
    assert sorted(per_fold_class.values()) == [8] * 10
  assert builder.info.splits.total_num_examples == 400
  assert sorted(per_class.values()) == [40] * 10
  assert media_builder.read_skip_report(builder.data_dir) == []
  durations = np.array(durations)
  assert np.sum(np.abs(durations - 5.0) > 0.05) <= 6
  assert durations.min() > 3.5 and durations.max() < 7.3
