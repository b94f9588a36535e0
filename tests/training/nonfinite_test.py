"""The non-finite guard of training: a bad step is never applied (issue 14)."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from l3_tf.model import networks as model_lib
from l3_tf.training import train
from l3_tf.training import workdir as workdir_lib
from tests import testing


def _weights(model):
  return [v.numpy().copy() for v in model.trainable_variables]


def _batch(config, batch: int, seed: int):
  rng = np.random.default_rng(seed)
  features = {
      "image": tf.constant(rng.uniform(-1, 1, (batch, 224, 224, 3)),
                           tf.float32),
      "spectrogram": tf.constant(
          rng.normal(-2, 1, (batch,) + config.audio.spectrogram_shape),
          tf.float32)}
  labels = tf.constant(np.arange(batch) % 2, tf.int32)
  return features, labels


def test_a_batch_holding_inf_is_not_applied():
  config = testing.tiny_config()
  keras.utils.set_random_seed(0)
  model = model_lib.avc_network(config.model, config.image, config.audio)
  optimizer = keras.optimizers.Adam(1e-3)
  optimizer.build(model.trainable_variables)
  step = tf.Variable(0, dtype=tf.int64)
  train_step = train.make_train_step(model, optimizer,
                                     tf.distribute.get_strategy(), 4, step)
  features, labels = _batch(config, 4, seed=0)
  poisoned = dict(features, spectrogram=tf.tensor_scatter_nd_update(
      features["spectrogram"], [[1, 3, 5, 0]], [np.inf]))
  before = _weights(model)
  statistics = [v.numpy().copy() for v in model.non_trainable_variables]
  metrics = train_step(poisoned, labels)
  assert int(metrics["bad_steps"]) == 1
  assert int(step.numpy()) == 0 and int(optimizer.iterations.numpy()) == 0
  for old, new in zip(before, _weights(model)):
    np.testing.assert_array_equal(old, new)
  for old, variable in zip(statistics, model.non_trainable_variables):
    np.testing.assert_array_equal(old, variable.numpy())  # BN moving stats
  # The next, good batch is applied as usual.
  metrics = train_step(features, labels)
  assert int(metrics["bad_steps"]) == 0 and int(step.numpy()) == 1
  assert any(not np.array_equal(old, new)
             for old, new in zip(before, _weights(model)))
  assert all(np.isfinite(w).all() for w in _weights(model))


def test_a_huge_learning_rate_stops_with_finite_resumable_weights(
    fake_config, tmp_path):
  """lr=1e30: before, training ran to the end and saved NaN weights."""
  config = dataclasses.replace(fake_config, train=dataclasses.replace(
      fake_config.train, learning_rate=1e30, num_steps=8, max_bad_steps=2,
      checkpoint_every_steps=100, summary_images_every_steps=0))
  workdir = str(tmp_path / "run")
  with pytest.raises(train.TrainingDiverged,
                     match=r"diverged at step \d+: 2 consecutive .*ckpt-\d+"
                     ) as caught:
    train.train_and_evaluate(config, workdir)
  latest = workdir_lib.latest_checkpoint(workdir)
  assert caught.value.checkpoint == latest
  assert 0 < caught.value.step < 8
  reader = tf.train.load_checkpoint(latest)
  for name, _ in tf.train.list_variables(latest):
    value = reader.get_tensor(name)
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
      assert np.isfinite(value).all(), name
  _, model, step = workdir_lib.restore_avc_model(workdir)
  assert step == caught.value.step
  assert all(np.isfinite(w).all() for w in _weights(model))


def test_max_bad_steps_must_be_positive(fake_config):
  config = dataclasses.replace(fake_config, train=dataclasses.replace(
      fake_config.train, max_bad_steps=0))
  with pytest.raises(ValueError, match="train.max_bad_steps=0"):
    train.check_config(config)


def test_loss_scaled_gradients_are_left_to_the_loss_scale_optimizer():
  """float16 (issue 11): a LossScaleOptimizer skips its own overflows, so
  only a non-finite loss counts as a bad step there."""
  grads = [tf.constant([1.0, np.inf]), None]
  assert not bool(train.step_is_finite(tf.constant(0.5), grads))
  assert bool(train.step_is_finite(tf.constant(0.5), grads, check_grads=False))
  assert not bool(train.step_is_finite(tf.constant(np.nan), grads,
                                       check_grads=False))
