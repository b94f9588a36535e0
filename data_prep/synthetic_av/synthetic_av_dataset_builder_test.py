"""synthetic_av: TFDS builder test (tiny config) and end-to-end determinism."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

import data_prep.synthetic_av as synthetic_av
from data_prep import builder_testing
from data_prep import video_builder
from data_prep.synthetic_av import generate
from data_prep.synthetic_av import synthetic_av_dataset_builder
from l3_tf.data import video_example


class SyntheticAvTest(builder_testing.GeneratedDummyDataTestCase):
  """The tiny config: 8 / 2 / 2 videos of 3 s, generated at test time.

  The "dummy data" is the generator's output: TFDS points the download dir at
  the test's temporary folder and the builder renders the mp4 files there.
  """

  DATASET_CLASS = synthetic_av_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["tiny"]
  SPLITS = {"train": 8, "validation": 2, "test": 2}


def _examples(builder, split):
  ds = builder.as_dataset(split=split, shuffle_files=False,
                          decoders=video_example.SKIP_FRAME_DECODING)
  return sorted(tfds.as_numpy(ds), key=lambda ex: ex["video_id"])


def test_same_seed_identical_examples_and_ground_truth(tmp_path):
  kwargs = dict(num_train=2, num_validation=1, num_test=1,
                seconds_per_video=2.0, num_classes=3, num_workers=1)
  first = synthetic_av.build(tmp_path / "a", "tiny", **kwargs)
  second = synthetic_av.build(tmp_path / "b", "tiny", **kwargs)
  for split, count in (("train", 2), ("validation", 1), ("test", 1)):
    a, b = _examples(first, split), _examples(second, split)
    assert len(a) == len(b) == count
    for x, y in zip(a, b):
      assert x["video_id"] == y["video_id"]
      assert x["label"] == y["label"]
      np.testing.assert_array_equal(x["audio"], y["audio"])
      np.testing.assert_array_equal(x["frame_times"], y["frame_times"])
      assert list(x["frames"]) == list(y["frames"])  # JPEG bytes
  assert (synthetic_av.ground_truth(first)["videos"] ==
          synthetic_av.ground_truth(second)["videos"])
  # (Another seed renders other videos: generate_test.)


def test_build_stores_contract_and_ground_truth(tmp_path):
  builder = synthetic_av.build(tmp_path, "tiny", num_train=3, num_validation=1,
                               num_test=1, seconds_per_video=2.0,
                               num_workers=2)
  assert builder.builder_config.name.startswith("tiny_custom_")
  truth = synthetic_av.ground_truth(builder)
  assert video_builder.read_skip_report(builder.data_dir) == []
  examples = _examples(builder, "train")
  assert len(examples) == 3
  for ex in examples:
    video = truth["videos"][ex["video_id"].decode()]
    assert ex["label"] == video["label"]
    assert ex["duration_seconds"] == pytest.approx(2.0)
    assert ex["audio"].dtype == np.int16
    assert ex["audio"].shape == (2 * 48000,)
    # 4 fps from an 8 fps source: exactly k / 4.
    np.testing.assert_allclose(ex["frame_times"], np.arange(8) / 4.0,
                               atol=1e-6)
  names = builder.info.features["label"].names
  assert names == [s.name for s in generate.class_specs(4)]


def test_unknown_config_name_is_rejected(tmp_path):
  with pytest.raises(ValueError, match="config='huge'"):
    synthetic_av.build(tmp_path, "huge")
