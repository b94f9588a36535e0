"""Round trip of the workdir contract: config JSON and model checkpoint."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from experiments import configs
from l3_tf.model import networks as model_lib
from l3_tf.training import workdir as workdir_lib


def test_config_and_checkpoint_round_trip(tmp_path):
  config = configs.get_config("test")
  config = dataclasses.replace(config, model=dataclasses.replace(
      config.model, width_multiplier=1 / 32))
  workdir = str(tmp_path)
  workdir_lib.write_config(workdir, config)
  model = model_lib.avc_network(config.model)
  step = tf.Variable(7, dtype=tf.int64)
  manager = tf.train.CheckpointManager(
      tf.train.Checkpoint(model=model, step=step),
      workdir_lib.checkpoint_dir(workdir), max_to_keep=2)
  manager.save()
  restored_config, restored, restored_step = workdir_lib.restore_avc_model(workdir)
  assert restored_config == config
  assert restored_step == 7
  for a, b in zip(model.weights, restored.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_missing_workdir_parts_are_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="config.json"):
    workdir_lib.read_config(str(tmp_path))
  workdir_lib.write_config(str(tmp_path), configs.get_config("test"))
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    workdir_lib.restore_avc_model(str(tmp_path))


def test_unknown_config_name_is_named():
  with pytest.raises(ValueError, match="unknown config 'nope'"):
    configs.get_config("nope")
