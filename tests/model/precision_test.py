"""train.precision: the three policies, the deprecated alias, float16 loss
scaling through the real training loop."""

import dataclasses
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from l3_tf.model import precision
from l3_tf.training import config as config_lib
from l3_tf.training import train
from l3_tf.training import workdir as workdir_lib

_SCALE_KEY = "optimizer/dynamic_scale/.ATTRIBUTES/VARIABLE_VALUE"


def _train_config(**changes):
  return dataclasses.replace(config_lib.TrainConfig(), **changes)


@pytest.mark.parametrize("name,policy", [("float32", "float32"),
                                         ("bfloat16", "mixed_bfloat16"),
                                         ("float16", "mixed_float16")])
def test_policy_scope_sets_and_restores(name, policy):
  assert precision.resolve(_train_config(precision=name)) == name
  with precision.policy_scope(name):
    assert keras.mixed_precision.global_policy().name == policy
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    assert layer.compute_dtype == policy.replace("mixed_", "")
    assert layer.variable_dtype == "float32"
  assert keras.mixed_precision.global_policy().name == "float32"


def test_unknown_precision_is_named():
  with pytest.raises(ValueError, match=r"train.precision='half'"):
    precision.resolve(_train_config(precision="half"))
  config = config_lib.override(config_lib.Config(), "train.precision=float16")
  assert precision.resolve(config.train) == "float16"


def test_mixed_precision_is_a_deprecated_alias_of_bfloat16():
  with pytest.warns(precision.DeprecatedConfigWarning,
                    match="replaced by train.precision"):
    assert precision.resolve(_train_config(mixed_precision=True)) == "bfloat16"
  with pytest.raises(ValueError, match="contradicts train.precision='float16'"):
    precision.resolve(_train_config(mixed_precision=True, precision="float16"))
  # Older config.json files (mixed_precision only) still load.
  old = config_lib.to_dict(config_lib.Config())
  del old["train"]["precision"]
  assert config_lib.from_dict(config_lib.Config, old).train.precision == "float32"


def test_loss_scale_settings_are_checked():
  with pytest.raises(ValueError, match="loss_scale_growth_steps=0"):
    precision.resolve(_train_config(precision="float16",
                                    loss_scale_growth_steps=0))
  with pytest.raises(ValueError, match="loss_scale_initial=0"):
    precision.resolve(_train_config(precision="float16",
                                    loss_scale_initial=0.0))


def test_only_float16_wraps_the_optimizer():
  train_cfg = _train_config(precision="float16", loss_scale_initial=8.0,
                            loss_scale_growth_steps=3)
  adam = keras.optimizers.Adam(1e-3)
  assert precision.wrap_optimizer(adam, "bfloat16", train_cfg) is adam
  assert precision.loss_scale(adam) is None
  wrapped = precision.wrap_optimizer(adam, "float16", train_cfg)
  assert isinstance(wrapped, keras.optimizers.LossScaleOptimizer)
  assert wrapped.inner_optimizer is adam
  assert wrapped.dynamic_growth_steps == 3


def _scales(workdir):
  """{step: loss scale saved in ckpt-step}."""
  scales = {}
  for name in tf.io.gfile.listdir(os.path.join(workdir, "checkpoints")):
    if name.endswith(".index"):
      reader = tf.train.load_checkpoint(
          os.path.join(workdir, "checkpoints", name[:-len(".index")]))
      scales[int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))] = (
          float(reader.get_tensor(_SCALE_KEY)))
  return scales


def _assert_finite_weights(checkpoint):
  reader = tf.train.load_checkpoint(checkpoint)
  names = [name for name, _ in tf.train.list_variables(checkpoint)
           if name.startswith("model/") and
           reader.get_variable_to_dtype_map()[name].is_floating]
  assert names
  for name in names:
    assert np.all(np.isfinite(reader.get_tensor(name))), name


@pytest.mark.slow
def test_float16_loss_scale_grows_shrinks_and_resumes(fake_config, tmp_path):
  """The scale doubles after every finite step (growth_steps=1) until the
  float16 gradients overflow, which halves it and skips the step; no NaN
  reaches the weights and the float16 checkpoint resumes."""
  workdir = str(tmp_path / "fp16")
  config = dataclasses.replace(fake_config, train=dataclasses.replace(
      fake_config.train, precision="float16", num_steps=4,
      loss_scale_initial=2.0**13, loss_scale_growth_steps=1,
      keep_checkpoints=100, summary_images_every_steps=0))
  result = train.train_and_evaluate(config, workdir)
  assert result["step"] == 4
  assert keras.mixed_precision.global_policy().name == "float32"  # restored
  scales = _scales(workdir)
  assert sorted(scales) == list(range(1, 5))
  history = [2.0**13] + [scales[s] for s in range(1, 5)]
  ratios = {b / a for a, b in zip(history, history[1:])}
  assert ratios <= {2.0, 0.5}, history
  assert 2.0 in ratios, f"the loss scale never grew: {history}"
  assert 0.5 in ratios, f"no float16 overflow in 4 steps: {history}"
  _assert_finite_weights(workdir_lib.latest_checkpoint(workdir))

  longer = dataclasses.replace(config, train=dataclasses.replace(
      config.train, num_steps=5))
  result = train.train_and_evaluate(longer, workdir)
  assert result["start_step"] == 4 and result["step"] == 5
  scales = _scales(workdir)
  assert scales[5] / scales[4] in (2.0, 0.5)  # continued from the restored
  _assert_finite_weights(workdir_lib.latest_checkpoint(workdir))
  assert np.isfinite(result["eval"]["loss"])

  # Resuming the float16 checkpoint in float32 is refused by name.
  as_float32 = dataclasses.replace(longer, train=dataclasses.replace(
      longer.train, precision="float32", num_steps=6))
  with pytest.raises(ValueError, match=r"ckpt-5 was written with "
                     r"train.precision=float16 but this run has float32"):
    train.train_and_evaluate(as_float32, workdir)
