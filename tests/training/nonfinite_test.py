"""The non-finite guard of training: a bad step is never applied (issue 14),
and no checkpoint that computes NaN is saved, named good or resumed (26)."""

import dataclasses
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from l3_tf.model import finite
from l3_tf.model import networks as model_lib
from l3_tf.training import evaluate
from l3_tf.training import plan as plan_lib
from l3_tf.training import step as step_lib
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
  train_step = step_lib.make_train_step(model, optimizer,
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


@pytest.mark.parametrize("checkpoint_every", [1, 2])
def test_a_huge_learning_rate_leaves_no_checkpoint_that_computes_nan(
    fake_config, tmp_path, checkpoint_every):
  """lr=1e30 (issues 14, 26): one applied step (finite loss and gradients)
  leaves finite weights whose every forward pass is NaN. Before, that
  checkpoint was named "last good" and eval_avc scored its NaN logits 0.5.
  Every 1 step: the save's probe refuses it; every 2: no step after it was
  finite, so it is never saved."""
  config = dataclasses.replace(fake_config, train=dataclasses.replace(
      fake_config.train, learning_rate=1e30, num_steps=4, max_bad_steps=2,
      checkpoint_every_steps=checkpoint_every, summary_images_every_steps=0))
  workdir = str(tmp_path / "run")
  with pytest.raises(train.TrainingDiverged,
                     match=r"diverged at step 1: 2 consecutive ") as caught:
    train.train_and_evaluate(config, workdir)
  assert caught.value.step == 1
  # No checkpoint named good, and none left that a resume, an export or an
  # evaluation would pick up.
  assert caught.value.checkpoint is None
  assert "no checkpoint of the workdir is good" in str(caught.value)
  assert workdir_lib.latest_checkpoint(workdir) is None


@pytest.mark.slow  # two training runs
def test_the_last_good_checkpoint_named_evaluates_finite(fake_config,
                                                         tmp_path):
  """Good checkpoints, then a resume at lr 1e30 (the config's rate applies
  on resume): the step after ckpt-2 is applied and finite, its weights'
  probe pass is not (not saved), the steps after are bad. ckpt-2 is named;
  it restores and evaluates to finite numbers."""
  config = dataclasses.replace(fake_config, train=dataclasses.replace(
      fake_config.train, num_steps=2, checkpoint_every_steps=1,
      max_bad_steps=2, summary_images_every_steps=0))
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(config, workdir)
  good = workdir_lib.latest_checkpoint(workdir)
  assert good.endswith("ckpt-2")
  more = dataclasses.replace(config, train=dataclasses.replace(
      config.train, num_steps=6, learning_rate=1e30))
  with pytest.raises(train.TrainingDiverged,
                     match=rf"diverged at step 3: .*last good checkpoint "
                     rf"{good}$") as caught:
    train.train_and_evaluate(more, workdir)
  assert caught.value.checkpoint == good
  assert workdir_lib.latest_checkpoint(workdir) == good
  results = evaluate.evaluate_workdir(workdir)
  assert results["checkpoint"] == good and np.isfinite(results["loss"])


def test_resume_refuses_nan_weights_naming_the_variable(fake_config,
                                                         tmp_path):
  config = dataclasses.replace(fake_config, train=dataclasses.replace(
      fake_config.train, num_steps=1, summary_images_every_steps=0))
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(config, workdir)
  prefix = testing.set_checkpoint_value(workdir, "vision_tower/conv2_1/kernel")
  more = dataclasses.replace(config, train=dataclasses.replace(
      config.train, num_steps=2))
  with pytest.raises(finite.NonFiniteError,
                     match=rf"^checkpoint {prefix} \(resuming\): variable "
                     r"vision_tower/conv2_1/kernel holds NaN"):
    train.train_and_evaluate(more, workdir)
  assert workdir_lib.latest_checkpoint(workdir) == prefix  # nothing new


def test_discarding_a_checkpoint_keeps_the_others_listed(tmp_path,
                                                         monkeypatch):
  """What a diverged run does to the checkpoint no finite step followed; a
  relative workdir, as the README writes them."""
  monkeypatch.chdir(tmp_path)
  counter = tf.Variable(0, dtype=tf.int64)
  checkpoints = workdir_lib.WorkerCheckpoints(
      tf.train.Checkpoint(step=counter), "run", tf.distribute.get_strategy(),
      max_to_keep=3)
  first = checkpoints.save(1)
  second = checkpoints.save(2)
  with warnings.catch_warnings():
    warnings.simplefilter("error", workdir_lib.WorkdirWarning)
    assert checkpoints.latest() == str(tmp_path / "run/checkpoints/ckpt-2")
    checkpoints.discard(second)
    assert checkpoints.latest() == str(tmp_path / "run/checkpoints/ckpt-1")
  assert not tf.io.gfile.glob(second + ".*")
  state = tf.train.get_checkpoint_state("run/checkpoints")
  assert list(state.all_model_checkpoint_paths) == [first]
  checkpoints.discard(first)
  assert checkpoints.latest() is None


def test_max_bad_steps_must_be_positive(fake_config):
  config = dataclasses.replace(fake_config, train=dataclasses.replace(
      fake_config.train, max_bad_steps=0))
  with pytest.raises(ValueError, match="train.max_bad_steps=0"):
    plan_lib.check_config(config)


def test_loss_scaled_gradients_are_left_to_the_loss_scale_optimizer():
  """float16 (issue 11): a LossScaleOptimizer skips its own overflows, so
  only a non-finite loss counts as a bad step there."""
  grads = [tf.constant([1.0, np.inf]), None]
  assert not bool(step_lib.step_is_finite(tf.constant(0.5), grads))
  assert bool(step_lib.step_is_finite(tf.constant(0.5), grads, check_grads=False))
  assert not bool(step_lib.step_is_finite(tf.constant(np.nan), grads,
                                       check_grads=False))
