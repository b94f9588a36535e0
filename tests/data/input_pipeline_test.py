"""Property tests of the AVC input pipeline on the fake video dataset.

Every pair is checked against what it claims to be: positives' frames lie in
their audio window, negatives' halves come from different videos, batches
are balanced exactly, gains stay within +-10% without clipping, and the
model inputs are the frame and the audio window the metadata names.
"""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from l3_tf.data import audio_frontend
from l3_tf.data import audio_params as audio_params_lib
from l3_tf.data import audio_reference
from l3_tf.data import image_ops
from l3_tf.data import input_pipeline
from l3_tf.data import video_example
from tests import fake_videos
from tests import pair_checks
from tests import testing

@pytest.fixture(scope="module")
def config(fake_config):
  return dataclasses.replace(fake_config, data=dataclasses.replace(
      fake_config.data, eval_num_pairs=24))


def test_train_pairs_obey_the_contract(config):
  stored = fake_videos.stored("train")
  lengths = {k: len(v["audio"]) for k, v in stored.items()}
  dataset = input_pipeline.train_dataset(config, 8, seed=3, with_metadata=True)
  # 12 batches of 8 pairs = 48 video visits = 6 epochs of the 8 usable videos.
  batches = pair_checks.collect(dataset, 12)
  assert pair_checks.check_pair_properties(batches, lengths) == 96
  frame_ids = {v.decode() for _, _, m in batches for v in m["frame_video_id"]}
  audio_ids = {v.decode() for _, _, m in batches for v in m["audio_video_id"]}
  usable = set(stored) - set(fake_videos.UNUSABLE_TRAIN_IDS)
  assert frame_ids == audio_ids == usable
  # Frames after the end of fake_t7's audio (2.5 s) are never drawn.
  times_t7 = [t for _, _, m in batches
              for t, v in zip(m["frame_time"], m["frame_video_id"])
              if v == b"fake_t7"]
  assert times_t7 and max(times_t7) <= 2.5
  gains = np.concatenate([m["gain"] for _, _, m in batches])
  assert gains.std() > 0.02  # augmentation is on


def test_model_inputs_are_the_named_frame_and_window(config):
  """The spectrogram is that of the named window x gain; eval images are
  the central crop of the named frame."""
  stored = fake_videos.stored("train")
  dataset = input_pipeline.train_dataset(config, 8, seed=5, with_metadata=True)
  features, labels, meta = pair_checks.collect(dataset, 1)[0]
  for p in range(4):
    audio = stored[meta["audio_video_id"][p].decode()]["audio"]
    start = meta["audio_start_sample"][p]
    window = audio[start:start + pair_checks.CLIP].astype(np.float32) / video_example.AUDIO_SCALE
    scaled = (window * meta["gain"][p])[np.newaxis]  # [1, 48000]
    expected = audio_frontend.log_spectrogram(tf.constant(scaled))[0]
    # Both within the float32 bound of the float64 spectrogram (the
    # pipeline's product with the gain may round differently: u per sample,
    # far inside the FFT's term): 2 x the bound, element by element.
    bound = testing.log_spectrogram_error_bound(
        scaled, audio_reference.log_spectrogram(scaled),
        audio_params_lib.DEFAULT)[0]
    np.testing.assert_array_less(
        np.abs(features["spectrogram"][p] - expected.numpy()), 2 * bound)

  builder = input_pipeline.load_builder(config.data.dataset, config.data.data_dir)
  decoded = {ex["video_id"].decode(): ex for ex in tfds.as_numpy(
      builder.as_dataset(split="test"))}
  evaluation = input_pipeline.eval_dataset(config, "test", num_pairs=8,
                                           with_metadata=True)
  features, labels, meta = pair_checks.collect(evaluation, 1)[0]
  for p in range(8):
    video = decoded[meta["frame_video_id"][p].decode()]
    frame = video["frames"][meta["frame_index"][p]]
    np.testing.assert_allclose(
        features["image"][p],
        image_ops.preprocess_for_eval(tf.constant(frame)).numpy(),
        atol=testing.image_op_tolerance(*frame.shape[:2], resized=True))
    assert meta["gain"][p] == 1.0


def test_eval_set_is_fixed_balanced_and_seeded(config):
  first = pair_checks.collect(input_pipeline.eval_dataset(config, "test", with_metadata=True), 10)
  second = pair_checks.collect(input_pipeline.eval_dataset(config, "test", with_metadata=True), 10)
  assert sum(len(l) for _, l, _ in first) == config.data.eval_num_pairs
  labels = np.concatenate([l for _, l, _ in first])
  assert (labels == 1).sum() == (labels == 0).sum()
  for (f1, l1, m1), (f2, l2, m2) in zip(first, second):
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_array_equal(f1["image"], f2["image"])
    np.testing.assert_array_equal(f1["spectrogram"], f2["spectrogram"])
    for key in m1:
      np.testing.assert_array_equal(m1[key], m2[key])
  pair_checks.check_pair_properties(first, max_gain_delta=0.0)
  reseeded = dataclasses.replace(config, data=dataclasses.replace(
      config.data, eval_seed=1))
  other = pair_checks.collect(input_pipeline.eval_dataset(reseeded, "test", with_metadata=True), 10)
  starts = lambda batches: np.concatenate(
      [m["audio_start_sample"] for _, _, m in batches])
  assert not np.array_equal(starts(first), starts(other))


def test_train_seed_decides_the_pairs(config):
  def starts(seed):
    dataset = input_pipeline.train_dataset(config, 8, seed=seed,
                                           with_metadata=True)
    return np.concatenate([m["audio_start_sample"]
                           for _, _, m in pair_checks.collect(dataset, 2)])
  np.testing.assert_array_equal(starts(7), starts(7))
  assert not np.array_equal(starts(7), starts(8))


def test_two_input_pipelines_read_disjoint_videos(config):
  """Sharding for multi-worker training (one file: split by examples)."""
  seen = []
  for pipeline in range(2):
    context = tf.distribute.InputContext(num_input_pipelines=2,
                                         input_pipeline_id=pipeline,
                                         num_replicas_in_sync=2)
    dataset = input_pipeline.train_dataset(config, 4, context, seed=1,
                                           with_metadata=True)
    batches = pair_checks.collect(dataset, 8)
    pair_checks.check_pair_properties(batches)
    seen.append({v for _, _, m in batches for v in m["frame_video_id"]})
  assert seen[0] and seen[1] and not seen[0] & seen[1]


def test_group_of_three_over_a_two_video_split(config):
  """Tiny splits and epoch boundaries: negatives still never share a video."""
  small = dataclasses.replace(config, data=dataclasses.replace(
      config.data, group_videos=3, train_split="test[:2]"))
  batches = pair_checks.collect(input_pipeline.train_dataset(small, 6, seed=2,
                                                  with_metadata=True), 10)
  pair_checks.check_pair_properties(batches)
  ids = {v for _, _, m in batches for v in m["audio_video_id"]}
  assert len(ids) == 2


def test_odd_batch_is_refused(config):
  with pytest.raises(ValueError, match="batch_size=7 must be even"):
    input_pipeline.train_dataset(config, 7)


def test_missing_dataset_and_split_are_named(config, tmp_path):
  with pytest.raises(input_pipeline.DatasetError,
                     match=r"'no_such_videos' is not prepared in data_dir="):
    input_pipeline.load_builder("no_such_videos", str(tmp_path))
  builder = input_pipeline.load_builder(config.data.dataset, config.data.data_dir)
  with pytest.raises(input_pipeline.DatasetError, match="no split 'extra'"):
    input_pipeline.check_split(builder, "extra")
