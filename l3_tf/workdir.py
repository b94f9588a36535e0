"""The layout of a training workdir: the contract between training and its users.

  <workdir>/config.json          the resolved `l3_tf.config.Config`
  <workdir>/checkpoints/ckpt-N   tf.train.Checkpoint with at least
                                 `model` (the `avc_network`) and `step`
  <workdir>/eval_<split>.json    AVC evaluation results

Training writes it; evaluation, export, embedding, transfer and
visualisation read it through the functions below.
"""

import os

import keras
import tensorflow as tf

from l3_tf import config as config_lib
from l3_tf import filesystems
from l3_tf import model as model_lib

CONFIG_FILENAME = "config.json"
CHECKPOINT_SUBDIR = "checkpoints"


def config_path(workdir: str) -> str:
  return os.path.join(workdir, CONFIG_FILENAME)


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(workdir, CHECKPOINT_SUBDIR)


def write_config(workdir: str, config: config_lib.Config) -> str:
  """Writes the resolved config as JSON; returns its path."""
  filesystems.prepare(workdir, "workdir")
  tf.io.gfile.makedirs(workdir)
  path = config_path(workdir)
  with tf.io.gfile.GFile(path, "w") as f:
    f.write(config_lib.to_json(config))
  return path


def read_config(workdir: str) -> config_lib.Config:
  """The config a workdir was trained with."""
  filesystems.prepare(workdir, "workdir")
  path = config_path(workdir)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(
        f"{path} does not exist: {workdir!r} is not a training workdir "
        "(run experiments.train_avc first)")
  import json
  with tf.io.gfile.GFile(path) as f:
    return config_lib.from_dict(config_lib.Config, json.load(f))


def latest_checkpoint(workdir: str) -> str | None:
  filesystems.prepare(workdir, "workdir")
  return tf.train.latest_checkpoint(checkpoint_dir(workdir))


def latest_step(workdir: str) -> int | None:
  """The training step of the latest checkpoint (None without one), read
  without building the model."""
  checkpoint = latest_checkpoint(workdir)
  if checkpoint is None:
    return None
  return int(tf.train.load_variable(checkpoint,
                                    "step/.ATTRIBUTES/VARIABLE_VALUE"))


def restore_avc_model(workdir: str, checkpoint: str | None = None
                      ) -> tuple[config_lib.Config, keras.Model, int]:
  """Rebuilds the AVC network of a workdir and loads its weights.

  Args:
    workdir: a training workdir.
    checkpoint: a checkpoint prefix; default the latest in the workdir.

  Returns:
    (config, float32 `avc_network` with the trained weights, training step).

  Raises:
    FileNotFoundError: no config or no checkpoint in the workdir.
  """
  config = read_config(workdir)
  checkpoint = checkpoint or latest_checkpoint(workdir)
  if checkpoint is None:
    raise FileNotFoundError(
        f"no checkpoint in {checkpoint_dir(workdir)}: training has not "
        "written one yet")
  model = model_lib.avc_network(config.model, config.image, config.audio)
  step = tf.Variable(0, dtype=tf.int64)
  status = tf.train.Checkpoint(model=model, step=step).restore(checkpoint)
  status.expect_partial()  # the optimizer and data state are not needed here
  status.assert_existing_objects_matched()
  return config, model, int(step.numpy())


def load_network(weights: str, random_config: config_lib.Config,
                 seed: int = 0) -> tuple[config_lib.Config, keras.Model, str]:
  """The AVC network named by a `--weights` value.

  Args:
    weights: "random" (untrained, the paper's "Ours random" row) or a
      training workdir.
    random_config: the architecture used for "random".
    seed: initialisation seed for "random".

  Returns:
    (config, avc_network, a description for result files).
  """
  if weights == "random":
    keras.utils.set_random_seed(seed)
    model = model_lib.avc_network(random_config.model, random_config.image,
                                  random_config.audio)
    return random_config, model, f"random (config {random_config.name}, seed {seed})"
  if not tf.io.gfile.isdir(weights):
    raise FileNotFoundError(
        f"weights={weights!r} is neither 'random' nor a training workdir")
  config, model, step = restore_avc_model(weights)
  return config, model, f"{weights} (step {step}, config {config.name})"
