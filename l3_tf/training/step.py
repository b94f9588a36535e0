"""The synchronous training step: one replica's forward and backward pass,
the finite check that skips a bad step, and the update under any strategy.

What the step minimises is an `Objective`: the AVC task's (`AVC`), the
supervised classifiers' (`l3_tf.evaluation.baselines`) and fine-tuning's
(`l3_tf.evaluation.finetune`) all run through this step and the loop of
`l3_tf.training.train`.
"""

import dataclasses
from typing import Callable

import keras
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Objective:
  """What a training step minimises, and what it reports beside the loss.

  Attributes:
    compute: `(outputs, labels, global_batch_size) -> (loss, metrics)` on
      one replica: the model's training-mode outputs and the batch's labels
      give that replica's share of the data loss (averaged over the global
      batch, as `tf.nn.compute_average_loss`) and of each metric, so that
      summing over the replicas gives the batch's figures.
    metric_names: the keys of `metrics`, in the order they are logged.
  """

  compute: Callable
  metric_names: tuple[str, ...]


def classification(logits, labels, global_batch_size):
  """Softmax cross-entropy and top-1 hits of one replica's `[b, K]` logits.

  Returns:
    (loss, accuracy): float32 scalars, this replica's shares of the global
    batch's mean cross-entropy and accuracy. `global_batch_size` may be a
    tensor (the batch's own size, for a last batch that is smaller).
  """
  logits = tf.cast(logits, tf.float32)  # [b, K]
  per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=labels, logits=logits)  # [b]
  loss = tf.nn.compute_average_loss(per_example,
                                    global_batch_size=global_batch_size)
  correct = tf.reduce_sum(tf.cast(tf.equal(
      tf.argmax(logits, axis=1, output_type=tf.int32), labels), tf.float32))
  return loss, correct / tf.cast(global_batch_size, tf.float32)


def _avc(logits, labels, global_batch_size):
  loss, accuracy = classification(logits, labels, global_batch_size)
  return loss, {"accuracy": accuracy}


# The AVC task: [b, 2] logits of "corresponds", cross-entropy and accuracy.
AVC = Objective(_avc, ("accuracy",))


def step_is_finite(loss: tf.Tensor, grads, check_grads: bool = True
                   ) -> tf.Tensor:
  """True (bool scalar, the same on every replica) when a step may be applied.

  A step is bad when its loss or any gradient is not finite on any replica;
  it is then skipped, so no NaN or inf ever reaches the weights, the
  optimizer's moments or a checkpoint. With `check_grads=False` only the
  loss is checked: a `LossScaleOptimizer` skips its own gradient overflows
  (normal in float16) and lowers its scale, which must not count as bad.
  """
  finite = tf.reduce_all(tf.math.is_finite(loss))
  if check_grads:
    for grad in grads:
      if grad is not None:
        finite &= tf.reduce_all(tf.math.is_finite(grad))
  context = tf.distribute.get_replica_context()
  if context is not None and context.num_replicas_in_sync > 1:
    bad_replicas = context.all_reduce(tf.distribute.ReduceOp.SUM,
                                      tf.cast(~finite, tf.float32))
    finite = bad_replicas < 0.5
  return finite


def make_gradients(model: keras.Model, optimizer, global_batch_size: int,
                   objective: Objective = AVC):
  """One replica's forward and backward pass, uncompiled.

  Args:
    model: the network being trained (the `avc_network` for `AVC`).
    optimizer: its optimizer (a float16 run's `LossScaleOptimizer` scales
      the loss; others leave it unchanged).
    global_batch_size: examples per step over all replicas (the loss is
      averaged over the global batch).
    objective: what the step minimises and reports.

  Returns:
    `gradients(features, labels) -> (grads, metrics, loss, regularization,
    total)`: grads of `model.trainable_variables` (scaled as the optimizer
    scales the loss), the objective's metrics (this replica's shares), the
    replica's share of the data loss and of the weight decay, and their
    sum. Running it updates the BN moving statistics (a training-mode
    forward pass).
  """

  def gradients(features, labels):
    with tf.GradientTape() as tape:
      loss, metrics = objective.compute(model(features, training=True),
                                        labels, global_batch_size)
      regularization = (tf.add_n(model.losses) if model.losses
                        else tf.constant(0.0))
      regularization = tf.nn.scale_regularization_loss(regularization)
      total = loss + regularization
      # Scaled by a float16 run's LossScaleOptimizer (which unscales the
      # gradients in apply_gradients and skips overflowing steps itself);
      # unchanged otherwise.
      scaled_total = optimizer.scale_loss(total)
    grads = tape.gradient(scaled_total, model.trainable_variables)
    return grads, metrics, loss, regularization, total

  return gradients


def make_train_step(model: keras.Model, optimizer, strategy,
                    global_batch_size: int, step: tf.Variable,
                    jit_compile: bool = False, loop: bool = False,
                    objective: Objective = AVC):
  """The synchronous training step: `(features, labels) -> metrics`.

  Each replica averages its examples' loss over the *global* batch and
  adds its share (1 / replicas) of the weight decay; the optimizer sums the
  replicas' gradients, so N replicas of b pairs take the same step as one
  device with N x b pairs.

  Args:
    model: the network (the `avc_network` for `AVC`), built under
      `strategy.scope()`.
    optimizer: a Keras optimizer built under the same scope.
    strategy: the tf.distribute strategy.
    global_batch_size: examples per step over all replicas.
    step: int64 variable incremented once per step.
    jit_compile: compile each replica's forward and backward pass with XLA
      (the optimizer's update runs outside the compiled cluster).
    loop: return `train_loop(iterator, num_steps)` instead, which runs
      `num_steps` steps in one call (a `tf.range` loop, each step reading
      `next(iterator)` of a distributed iterator) and returns the metrics
      averaged over its good steps (`train.steps_per_loop`).
    objective: what the step minimises and reports (default the AVC task).

  A step whose loss or any gradient is not finite is not applied (nor its
  BN statistics updates) and does not advance `step` (see
  `step_is_finite`); its "bad_steps" metric is 1.

  Returns:
    A tf.function taking distributed (or plain, one replica) features and
    int32 labels, returning {"loss": data loss, "regularization", and the
    objective's metrics ("accuracy" for AVC)} reduced over the global batch, "bad_steps" (0 or 1) and
    "good_steps" (1 - bad_steps). `train_loop`: the same keys, the metrics
    averaged over the loop's good steps, "good_steps" counted and
    "bad_steps" the bad steps in a row at the loop's end. Either carries
    its forward and backward pass (compiled with `jit_compile`) as
    `.gradients`, for `check_compiled_step`.
  """
  check_grads = not isinstance(optimizer,
                               keras.optimizers.LossScaleOptimizer)
  # Forward and backward; the update stays outside so that XLA can compile
  # this part under any strategy (an update inside an XLA cluster needs a
  # cross-replica merge, which XLA cannot compile under MirroredStrategy).
  gradients = make_gradients(model, optimizer, global_batch_size, objective)
  if jit_compile:
    gradients = tf.function(gradients, jit_compile=True)

  def replica_step(features, labels):
    # The forward pass updates the BN moving statistics: kept to undo a bad
    # step (small: a few vectors per layer).
    state = [tf.identity(v) for v in model.non_trainable_variables]
    grads, metrics, loss, regularization, total_loss = gradients(features,
                                                                 labels)
    good = step_is_finite(total_loss, grads, check_grads)
    return loss, regularization, metrics, grads, state, tf.cast(good, tf.int64)

  def replica_apply(grads):
    optimizer.apply_gradients(zip(grads, model.trainable_variables))

  def replica_undo(state):
    for variable, value in zip(model.non_trainable_variables, state):
      variable.assign(value)

  def total(value):
    return strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)

  @tf.function
  def train_step(features, labels):
    loss, regularization, metrics, grads, state, good = strategy.run(
        replica_step, args=(features, labels))
    # Every replica agrees on `good` (all-reduced in `step_is_finite`). The
    # branch runs in cross-replica context: MirroredStrategy cannot
    # aggregate gradients inside a replica's tf.cond.
    good = strategy.experimental_local_results(good)[0]
    tf.cond(good > 0,
            lambda: strategy.run(replica_apply, args=(grads,)),
            lambda: strategy.run(replica_undo, args=(state,)))
    step.assign_add(good)
    return {"loss": total(loss), "regularization": total(regularization),
            **{key: total(metrics[key]) for key in objective.metric_names},
            "bad_steps": 1 - good, "good_steps": good}

  # The (compiled) forward and backward pass, for `check_compiled_step`.
  train_step.gradients = gradients
  if not loop:
    return train_step

  @tf.function
  def train_loop(iterator, num_steps):
    sums = {key: tf.constant(0.0) for key in
            ("loss", "regularization") + objective.metric_names}
    good_steps = tf.constant(0, tf.int64)
    bad_in_a_row = tf.constant(0, tf.int64)
    for _ in tf.range(num_steps):
      metrics = train_step(*next(iterator))
      good = metrics["good_steps"] > 0
      # A skipped step's metrics may be NaN: they are left out of the sums.
      sums = {key: sums[key] + tf.where(good, metrics[key], 0.0)
              for key in sums}
      good_steps += metrics["good_steps"]
      bad_in_a_row = tf.where(good, tf.constant(0, tf.int64),
                              bad_in_a_row + 1)
    denominator = tf.cast(tf.maximum(good_steps, 1), tf.float32)
    averaged = {key: value / denominator for key, value in sums.items()}
    return {**averaged, "good_steps": good_steps, "bad_steps": bad_in_a_row}

  train_loop.gradients = gradients
  return train_loop
