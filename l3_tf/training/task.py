"""What a training run trains: the network, its objective and its data.

The loop of `l3_tf.training.train` (strategy, checkpoints and resuming,
SIGTERM, the non-finite guard, TensorBoard, the progress bar) is the same
for every network this project trains; a `Task` is what differs:

* the AVC networks (L3-Net, AVE-Net; `avc_task`),
* the supervised vision and audio classifiers of the AVC table's baselines
  (`l3_tf.evaluation.baselines.classifiers_task`),
* fine-tuning the audio tower on a sound dataset
  (`l3_tf.evaluation.finetune.train_round`).
"""

import dataclasses
from typing import Callable

import tensorflow as tf

from l3_tf.data import input_pipeline
from l3_tf.model import finite
from l3_tf.model import networks as model_lib
from l3_tf.training import evaluate as evaluate_lib
from l3_tf.training import plan as plan_lib
from l3_tf.training import step as step_lib
from l3_tf.training import workdir as workdir_lib


@dataclasses.dataclass(frozen=True)
class Task:
  """A network, what it minimises and what it reads; the loop is shared.

  Attributes:
    name: words for the logs ("AVC", "supervised classifiers", ...).
    build_model: `() -> keras.Model`, called under the strategy's scope
      after the seed `train.seed` is set, before any checkpoint is
      restored (a resume overwrites what it set).
    objective: the step's loss and metrics (`step.Objective`).
    dataset: `(config, batch_per_replica, input_context, seed, builder) ->
      tf.data.Dataset` of endless `(features, labels)` training batches;
      `config` is the run's (with data.on_bad_record="skip", its split
      without the records found damaged), `builder` the plan's.
    plan: `(config, num_replicas, num_workers) -> plan.Plan`: checks the
      config and the data before anything runs (`plan.check_config`).
    write_workdir: `(workdir) -> None`: what the chief writes into the
      workdir before training (the config, ...).
    check_model: `(model, source) -> None`, raising
      `finite.NonFiniteError` when the weights or a probe forward pass are
      not finite (run before every checkpoint and after a restore).
    evaluate: optional `(model, config, builder, step) -> {"accuracy",
      "loss", "split"}`, run on the chief every `train.eval_every_steps`.
    image_summaries: write input pairs as TensorBoard images (AVC pairs).
    input_description: the plan's "input:" line; None: the dataset split
      of `config.data`.
  """

  name: str
  build_model: Callable
  objective: step_lib.Objective
  dataset: Callable
  write_workdir: Callable
  check_model: Callable = finite.check_model
  plan: Callable = plan_lib.check_config
  evaluate: Callable | None = None
  image_summaries: bool = False
  input_description: str | None = None


def plain_schedule(config, suffix: str, *, batch_size: int,
                   learning_rate: float, num_steps: int, log_every_steps: int,
                   checkpoint_every_steps: int, keep_checkpoints: int,
                   seed: int, **train_overrides):
  """`config` renamed `<name>_<suffix>`, with a plain schedule in its
  `train` section for a task other than AVC: a constant Adam rate, one step
  per call without XLA, no in-training evaluation, no pair images (data,
  model, front ends and the rest of `train` stay; `train_overrides`
  replace more of it)."""
  return dataclasses.replace(
      config, name=f"{config.name}_{suffix}",
      train=dataclasses.replace(
          config.train, batch_size_per_replica=batch_size,
          global_batch_size=0, learning_rate=learning_rate, warmup_steps=0,
          learning_rate_decay="constant", num_steps=num_steps,
          log_every_steps=log_every_steps,
          checkpoint_every_steps=checkpoint_every_steps,
          keep_checkpoints=keep_checkpoints, summary_images_every_steps=0,
          eval_every_steps=0, seed=seed, jit_compile=False, steps_per_loop=1,
          **train_overrides))


def pair_images(features, labels, max_pairs: int) -> dict[str, tf.Tensor]:
  """Frame | spectrogram images of a batch, by label, for TensorBoard.

  Returns:
    {"pairs/label_1_corresponds": [n, 224, 224 + 4 + 199, 3], and
     "pairs/label_0_not": ...} with values in [0, 1]; the spectrogram is
    min-max scaled per pair and drawn with low frequencies at the bottom.
  """
  image = (tf.cast(features["image"], tf.float32) + 1.0) / 2.0  # [b, 224, 224, 3]
  spec = tf.cast(features["spectrogram"], tf.float32)  # [b, 257, 199, 1]
  low = tf.reduce_min(spec, axis=[1, 2, 3], keepdims=True)
  high = tf.reduce_max(spec, axis=[1, 2, 3], keepdims=True)
  spec = tf.math.divide_no_nan(spec - low, high - low)[:, ::-1]  # low freq at bottom
  height = image.shape[1]
  spec = tf.image.resize(spec, [height, spec.shape[2]])  # [b, 224, 199, 1]
  spec = tf.image.grayscale_to_rgb(spec)
  gap = tf.ones_like(image[:, :, :4])  # [b, 224, 4, 3] white separator
  tiles = tf.concat([image, gap, spec], axis=2)  # [b, 224, 427, 3]
  labels = tf.reshape(labels, [-1])
  return {
      "pairs/label_1_corresponds": tf.boolean_mask(tiles, labels == 1)[:max_pairs],
      "pairs/label_0_not": tf.boolean_mask(tiles, labels == 0)[:max_pairs],
  }


def _avc_dataset(config, batch: int, context, seed: int, builder):
  return input_pipeline.train_dataset(
      config, batch, context, seed=seed, builder=builder,
      service_address=config.data.service_address)


def _avc_evaluate(model, config, builder, step: int) -> dict:
  return evaluate_lib.evaluate_model(model, config, builder=builder,
                                     source=f"the model at step {step}")


def avc_task(config, prepare_model=None) -> Task:
  """Self-supervised AVC training of `config.model`'s network on pairs.

  Args:
    config: an `l3_tf.training.config.Config`.
    prepare_model: optional `f(avc_network)` called once the model is built
      (see `train.train_and_evaluate`).
  """

  def build_model():
    model = model_lib.avc_network(config.model, config.image, config.audio)
    if prepare_model is not None:  # before restoring: a resume wins
      prepare_model(model)
    return model

  return Task(
      name="AVC", build_model=build_model, objective=step_lib.AVC,
      dataset=_avc_dataset,
      write_workdir=lambda workdir: workdir_lib.write_config(workdir, config),
      evaluate=_avc_evaluate, image_summaries=True)
