"""AVC self-supervised training: a custom loop under any tf.distribute strategy.

`train_and_evaluate(config, workdir, strategy)` validates the config, writes
`<workdir>/config.json`, resumes from the latest checkpoint in
`<workdir>/checkpoints/`, trains to `train.num_steps` and evaluates on
`data.eval_split` (writing `<workdir>/eval_<split>.json`).

Checkpoints hold `model`, `optimizer` (built before restoring, so that its
slots are restored), `step` and `data_seed`. The input pipeline is not
checkpointed (its shuffle buffer holds up to `data.shuffle_videos` whole
videos); instead each run seeds it from (train.seed, the step it starts
at), so a resumed run draws new pairs rather than replaying the ones the
interrupted run already trained on; `data_seed` records that seed.
Checkpoints are written every `train.checkpoint_every_steps` and on exit,
including Ctrl-C and SIGTERM (the step in progress finishes first).

TensorBoard (`<workdir>/train`, `<workdir>/eval`): loss, regularisation,
accuracy, learning rate, pairs/s, and input pairs as images (frame beside
its spectrogram) under tags naming their label.
"""

import dataclasses
import os
import shutil
import signal
import tempfile
import threading
import time

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from l3_tf.data import bad_records
from l3_tf.data import data_service
from l3_tf.data import input_pipeline
from l3_tf.model import finite
from l3_tf.model import networks as model_lib
from l3_tf.model import precision as precision_lib
from l3_tf.platform import cpu_features
from l3_tf.platform import filesystems
from l3_tf.training import distribute
from l3_tf.training import evaluate as evaluate_lib
from l3_tf.training import progress as progress_lib
from l3_tf.training import workdir as workdir_lib


class TrainingDiverged(RuntimeError):
  """The weights stopped computing finite numbers; none of that is saved.

  `train.max_bad_steps` consecutive steps had a non-finite loss or gradient
  (none was applied), or the weights at the end hold NaN or inf or compute
  non-finite logits. A checkpoint is good when the step after it computed a
  finite loss (or, for the last one, its weights and a probe forward pass
  are finite, `finite.check_model`); one that is not was never written or
  is removed. `checkpoint` is the last good one (None: there is none).
  """

  def __init__(self, step: int, reason: str, checkpoint: str | None):
    good = (f"last good checkpoint {checkpoint}" if checkpoint else
            "no checkpoint of the workdir is good (lower "
            "train.learning_rate and train again)")
    super().__init__(f"training diverged at step {step}: {reason}; {good}")
    self.step = step
    self.checkpoint = checkpoint


class TrainingInterrupted(Exception):
  """Training stopped early (signal or Ctrl-C); a checkpoint was written."""

  def __init__(self, step: int, reason: str):
    super().__init__(f"training interrupted by {reason} at step {step}; "
                     "checkpoint written, rerun the same command to resume")
    self.step = step
    self.reason = reason


LEARNING_RATE_DECAYS = ("constant", "cosine")


@keras.saving.register_keras_serializable(package="l3_tf")
class WarmupThenDecay(keras.optimizers.schedules.LearningRateSchedule):
  """Linear warm-up to `peak`, then constant or a half cosine to the end.

  Step s (the optimizer's `iterations` before its update: 0 for the first
  step) gets `peak * (s + 1) / warmup_steps` while s < warmup_steps, so the
  first step already moves; after it, `peak` ("constant") or
  `final + (peak - final) * (1 + cos(pi * p)) / 2` ("cosine") with p the
  fraction of the post-warm-up steps done and `final = final_fraction *
  peak`. A function of the step alone: a resumed run continues it exactly.
  """

  def __init__(self, peak: float, num_steps: int, warmup_steps: int = 0,
               decay: str = "constant", final_fraction: float = 0.0):
    self.peak = float(peak)
    self.num_steps = int(num_steps)
    self.warmup_steps = int(warmup_steps)
    self.decay = decay
    self.final_fraction = float(final_fraction)

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    warm = self.peak * (step + 1.0) / max(self.warmup_steps, 1)
    if self.decay == "cosine":
      final = self.final_fraction * self.peak
      done = tf.clip_by_value(
          (step - self.warmup_steps)
          / max(self.num_steps - self.warmup_steps, 1), 0.0, 1.0)
      after = final + (self.peak - final) * 0.5 * (1.0 + tf.cos(np.pi * done))
    else:
      after = tf.constant(self.peak)
    return tf.where(step < self.warmup_steps, warm, after)

  def get_config(self) -> dict:
    return {"peak": self.peak, "num_steps": self.num_steps,
            "warmup_steps": self.warmup_steps, "decay": self.decay,
            "final_fraction": self.final_fraction}


def learning_rate_schedule(train_cfg):
  """Adam's learning rate for a `TrainConfig`: a float when it is constant
  from the first step (the paper), else a `WarmupThenDecay`."""
  if not train_cfg.warmup_steps and train_cfg.learning_rate_decay == "constant":
    return train_cfg.learning_rate
  return WarmupThenDecay(train_cfg.learning_rate, train_cfg.num_steps,
                         train_cfg.warmup_steps, train_cfg.learning_rate_decay,
                         train_cfg.final_learning_rate_fraction)


@dataclasses.dataclass(frozen=True)
class Plan:
  """What `check_config` resolved: batch sizes and the dataset."""

  batch_size_per_replica: int
  global_batch_size: int
  num_replicas: int
  num_workers: int
  train_videos: int
  eval_videos: int
  builder: object = dataclasses.field(repr=False, compare=False)


def check_config(config, num_replicas: int = 1, num_workers: int = 1) -> Plan:
  """Checks a config before anything runs; names the first problem found.

  Raises:
    ValueError: (including `input_pipeline.DatasetError`) a bad value, a
      batch that does not split over the replicas, a missing dataset or
      split, or too few videos to form negatives.
  """
  train, data = config.train, config.data
  for where, value in (("train.num_steps", train.num_steps),
                       ("train.checkpoint_every_steps",
                        train.checkpoint_every_steps),
                       ("train.keep_checkpoints", train.keep_checkpoints),
                       ("train.log_every_steps", train.log_every_steps),
                       ("train.max_bad_steps", train.max_bad_steps),
                       ("data.shuffle_videos", data.shuffle_videos),
                       ("data.pairs_per_video", data.pairs_per_video),
                       ("data.eval_num_pairs", data.eval_num_pairs),
                       ("data.eval_batch_size", data.eval_batch_size)):
    if value <= 0:
      raise ValueError(f"{where}={value} must be > 0")
  if train.learning_rate <= 0:
    raise ValueError(f"train.learning_rate={train.learning_rate} must be > 0")
  if not 0 <= train.warmup_steps < train.num_steps:
    raise ValueError(f"train.warmup_steps={train.warmup_steps} must be in "
                     f"[0, train.num_steps={train.num_steps})")
  if train.learning_rate_decay not in LEARNING_RATE_DECAYS:
    raise ValueError(f"train.learning_rate_decay={train.learning_rate_decay!r}"
                     f"; expected one of {list(LEARNING_RATE_DECAYS)}")
  if not 0 <= train.final_learning_rate_fraction <= 1:
    raise ValueError("train.final_learning_rate_fraction="
                     f"{train.final_learning_rate_fraction} must be in [0, 1]")
  precision_lib.resolve(train)
  if train.steps_per_loop <= 0:
    raise ValueError(f"train.steps_per_loop={train.steps_per_loop} must be > 0")
  if data.service_address is not None:
    data_service.split_address(data.service_address)  # names a bad address
  if not 0 <= train.audio_gain_max < 1:
    raise ValueError(f"train.audio_gain_max={train.audio_gain_max} must be "
                     "in [0, 1)")
  if data.group_videos < 3:
    raise ValueError(
        f"data.group_videos={data.group_videos} must be >= 3: a group of 2 "
        "can hold the same video twice across an epoch boundary")
  bad_records.check_on_bad_record(data.on_bad_record)
  if data.eval_num_pairs % 2:
    raise ValueError(f"data.eval_num_pairs={data.eval_num_pairs} must be "
                     "even (a balanced set)")
  per_replica, global_batch = distribute.batch_sizes(
      train.batch_size_per_replica, train.global_batch_size, num_replicas)
  if per_replica % 2:
    raise ValueError(
        f"the batch per replica is {per_replica} (global {global_batch} over "
        f"{num_replicas} replicas); it must be even so that every batch "
        "holds as many positives as negatives")
  builder = input_pipeline.load_builder(data.dataset, data.data_dir)
  train_videos = input_pipeline.check_split(builder, data.train_split,
                                            min_videos=2 * num_workers)
  eval_videos = input_pipeline.check_split(builder, data.eval_split)
  return Plan(per_replica, global_batch, num_replicas, num_workers,
              train_videos, eval_videos, builder)


def describe_plan(config, strategy: tf.distribute.Strategy) -> str:
  """What a run will do, in a few lines (logged before anything else).

  Raises:
    ValueError: the batch does not split over the replicas.
  """
  train_cfg, data = config.train, config.data
  replicas = strategy.num_replicas_in_sync
  workers = distribute.num_workers(strategy)
  per_replica, global_batch = distribute.batch_sizes(
      train_cfg.batch_size_per_replica, train_cfg.global_batch_size, replicas)
  precision = ("mixed_bfloat16 (bfloat16 compute, float32 variables)"
               if train_cfg.mixed_precision else "float32")
  batch_norm = (config.model.batch_norm if config.model.use_batch_norm
                else "none (BN-free variant)")
  source = (f"tf.data service at {data.service_address} (per-worker seeds)"
            if data.service_address else
            f"local, {workers} input pipeline(s) (one per worker)")
  lines = [
      f"config {config.name!r}: {train_cfg.num_steps} steps",
      f"strategy: {distribute.strategy_name(strategy)}, {replicas} replica(s) on "
      f"{workers} worker(s)",
      f"batch: {per_replica} pairs per replica x {replicas} = {global_batch} "
      "per step",
      f"model: width x {config.model.width_multiplier:g}, batch norm "
      f"{batch_norm}",
      f"precision: {precision}",
      f"learning rate: Adam {train_cfg.learning_rate:g}, warm-up "
      f"{train_cfg.warmup_steps} steps, then {train_cfg.learning_rate_decay}"
      + (f" to x{train_cfg.final_learning_rate_fraction:g}"
         if train_cfg.learning_rate_decay == "cosine" else ""),
      f"XLA (train.jit_compile): {'on' if train_cfg.jit_compile else 'off'}",
      f"steps per loop: {train_cfg.steps_per_loop}",
      f"input: {data.dataset!r} split {data.train_split!r}, {source}",
  ]
  return "plan:\n  " + "\n  ".join(lines)


def pipeline_seed(seed: int, start_step: int) -> int:
  """The input-pipeline seed of a run that starts at `start_step`."""
  return input_pipeline.derive_seed(seed, start_step)


def steps_in_next_loop(step: int, train_cfg) -> int:
  """Steps the next call runs: up to `steps_per_loop`, never past a boundary.

  A loop ends on every multiple of the logging, checkpoint and evaluation
  periods and on `num_steps`, so that they (and SIGTERM, checked between
  calls) happen exactly where they would one step at a time. A step that
  writes pair images runs on its own (the images need its batch here).
  """
  count = min(train_cfg.steps_per_loop, train_cfg.num_steps - step)
  for period in (train_cfg.log_every_steps, train_cfg.checkpoint_every_steps,
                 train_cfg.eval_every_steps):
    if period:
      count = min(count, period - step % period)
  images_every = train_cfg.summary_images_every_steps
  if images_every and count > 1:
    for n in range(1, count + 1):
      if (step + n) % images_every == 0 or step + n == 1:
        # Loop up to the step before it; that step alone comes next.
        return max(1, n - 1)
  return max(1, count)


class _StopFlag:
  """Turns SIGTERM into a request to stop after the current step."""

  def __init__(self):
    self.reason = None
    self._previous = None

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    self.reason = signal.Signals(signum).name

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


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


def make_gradients(model: keras.Model, optimizer, global_batch_size: int):
  """One replica's forward and backward pass, uncompiled.

  Args:
    model: the `avc_network`.
    optimizer: its optimizer (a float16 run's `LossScaleOptimizer` scales
      the loss; others leave it unchanged).
    global_batch_size: pairs per step over all replicas (the loss is
      averaged over the global batch).

  Returns:
    `gradients(features, labels) -> (grads, logits, loss, regularization,
    total)`: grads of `model.trainable_variables` (scaled as the optimizer
    scales the loss), [b, 2] float32 logits, the replica's share of the data
    loss and of the weight decay, and their sum. Running it updates the BN
    moving statistics (a training-mode forward pass).
  """

  def gradients(features, labels):
    with tf.GradientTape() as tape:
      logits = tf.cast(model(features, training=True), tf.float32)  # [b, 2]
      per_pair = tf.nn.sparse_softmax_cross_entropy_with_logits(
          labels=labels, logits=logits)  # [b]
      loss = tf.nn.compute_average_loss(per_pair,
                                        global_batch_size=global_batch_size)
      regularization = (tf.add_n(model.losses) if model.losses
                        else tf.constant(0.0))
      regularization = tf.nn.scale_regularization_loss(regularization)
      total = loss + regularization
      # Scaled by a float16 run's LossScaleOptimizer (which unscales the
      # gradients in apply_gradients and skips overflowing steps itself);
      # unchanged otherwise.
      scaled_total = optimizer.scale_loss(total)
    grads = tape.gradient(scaled_total, model.trainable_variables)
    return grads, logits, loss, regularization, total

  return gradients


def make_train_step(model: keras.Model, optimizer, strategy,
                    global_batch_size: int, step: tf.Variable,
                    jit_compile: bool = False, loop: bool = False):
  """The synchronous training step: `(features, labels) -> metrics`.

  Each replica averages its pairs' cross-entropy over the *global* batch and
  adds its share (1 / replicas) of the weight decay; the optimizer sums the
  replicas' gradients, so N replicas of b pairs take the same step as one
  device with N x b pairs.

  Args:
    model: the `avc_network`, built under `strategy.scope()`.
    optimizer: a Keras optimizer built under the same scope.
    strategy: the tf.distribute strategy.
    global_batch_size: pairs per step over all replicas.
    step: int64 variable incremented once per step.
    jit_compile: compile each replica's forward and backward pass with XLA
      (the optimizer's update runs outside the compiled cluster).
    loop: return `train_loop(iterator, num_steps)` instead, which runs
      `num_steps` steps in one call (a `tf.range` loop, each step reading
      `next(iterator)` of a distributed iterator) and returns the metrics
      averaged over its good steps (`train.steps_per_loop`).

  A step whose loss or any gradient is not finite is not applied (nor its
  BN statistics updates) and does not advance `step` (see
  `step_is_finite`); its "bad_steps" metric is 1.

  Returns:
    A tf.function taking distributed (or plain, one replica) features and
    int32 labels, returning {"loss": data loss, "regularization",
    "accuracy"} reduced over the global batch, "bad_steps" (0 or 1) and
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
  gradients = make_gradients(model, optimizer, global_batch_size)
  if jit_compile:
    gradients = tf.function(gradients, jit_compile=True)

  def replica_step(features, labels):
    # The forward pass updates the BN moving statistics: kept to undo a bad
    # step (small: a few vectors per layer).
    state = [tf.identity(v) for v in model.non_trainable_variables]
    grads, logits, loss, regularization, total_loss = gradients(features,
                                                                labels)
    good = step_is_finite(total_loss, grads, check_grads)
    correct = tf.reduce_sum(tf.cast(
        tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), labels),
        tf.float32))
    return loss, regularization, correct, grads, state, tf.cast(good, tf.int64)

  def replica_apply(grads):
    optimizer.apply_gradients(zip(grads, model.trainable_variables))

  def replica_undo(state):
    for variable, value in zip(model.non_trainable_variables, state):
      variable.assign(value)

  def total(value):
    return strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)

  @tf.function
  def train_step(features, labels):
    loss, regularization, correct, grads, state, good = strategy.run(
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
            "accuracy": total(correct) / global_batch_size,
            "bad_steps": 1 - good, "good_steps": good}

  # The (compiled) forward and backward pass, for `check_compiled_step`.
  train_step.gradients = gradients
  if not loop:
    return train_step

  @tf.function
  def train_loop(iterator, num_steps):
    sums = {"loss": 0.0, "regularization": 0.0, "accuracy": 0.0}
    sums = {key: tf.constant(value) for key, value in sums.items()}
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


# --- XLA self-check ----------------------------------------------------------

# Confidence of the probabilistic round-off bound (Higham & Mary, "A new
# approach to probabilistic rounding error analysis", SIAM J. Sci. Comput.
# 41(5), 2019): each sum of n terms stays within lambda * sqrt(n) * u of its
# exact value except with probability at most 2 exp(-lambda^2 / 2) = 2.5e-14
# at lambda = 8, small enough over the ~1e10 roundings of a full-width step.
ROUNDOFF_CONFIDENCE = 8.0

# Unit round-off of each compute dtype: half the distance from 1 to the next
# number (2^-24 float32, 2^-11 float16, 2^-8 bfloat16).
_UNIT_ROUNDOFF = {"float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}


class CompiledStepMismatch(RuntimeError):
  """`train.jit_compile`: XLA's training step differs from the uncompiled one.

  Raised by `check_compiled_step` before any step is applied.
  """


def _weighted_layers(layer):
  """Every Conv2D and Dense layer inside `layer` (recursively)."""
  if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
    return [layer]
  return [inner for child in getattr(layer, "layers", [])
          for inner in _weighted_layers(child)]


def compiled_step_bound(model: keras.Model, batch_size_per_replica: int,
                        compute_dtype: str = "float32") -> float:
  """How far apart (relative) two correct float paths of one step may be.

  XLA and TensorFlow's kernels compute the same step with their own summation
  orders and fused multiply-adds; neither is exact. With unit round-off u of
  the compute dtype and n the longest sum of the step (a conv's kernel
  gradient and its BN statistics sum over batch x height x width positions,
  a layer's output over its fan-in), each sum lands within
  lambda * sqrt(n) * u of the exact one (probabilistic bound,
  `ROUNDOFF_CONFIDENCE`), relative to the result when its terms cancel like
  a random walk. The error passes through the forward and backward pass of
  every weighted layer (depth d = 2 x layers), each well conditioned as BN
  renormalises every conv: each path is within d * lambda * sqrt(n) * u of
  the exact step, so the two within twice that.

  Args:
    model: the network (its Conv2D / Dense layers give n and d).
    batch_size_per_replica: pairs per replica.
    compute_dtype: "float32", "bfloat16" or "float16".

  Returns:
    2 d lambda sqrt(n) u; e.g. 7.8e-3 for the 1/32-width test network on
    8 pairs of 64x64 images and 65x99 spectrograms, 0.044 for the 1/8-width
    demo on 32 pairs (n = 32 x 257 x 199).
    bfloat16 and float16 give bounds near or above 1: there only
    finiteness is a check.
  """
  layers = _weighted_layers(model)
  if not layers:
    raise ValueError(f"model {model.name!r} has no Conv2D or Dense layer")
  longest = 1
  for layer in layers:
    shape = layer.output.shape  # [b, h, w, c] or [b, units]
    positions = int(np.prod(shape[1:-1])) if len(shape) > 2 else 1
    fan_in = int(np.prod(layer.kernel.shape[:-1]))
    longest = max(longest, batch_size_per_replica * positions, fan_in)
  depth = 2 * len(layers)
  return (2 * depth * ROUNDOFF_CONFIDENCE * np.sqrt(longest)
          * _UNIT_ROUNDOFF[compute_dtype])


def _variable_names(model: keras.Model) -> list[str]:
  """`<sub-model>/<path>` of each trainable variable (the towers share paths)."""
  owner = {}
  for layer in model.layers:
    for variable in layer.trainable_variables:
      owner.setdefault(id(variable), layer.name)
  return [f"{owner[id(v)]}/{v.path}" if id(v) in owner else v.path
          for v in model.trainable_variables]


def check_compiled_step(compiled, reference, model: keras.Model, strategy,
                        features, labels, bound: float) -> dict:
  """Runs one step's forward and backward pass both ways; refuses a difference.

  Both run from the same weights on the same batch; the BN moving statistics
  are restored after each, nothing is applied. Run at start-up by a
  `train.jit_compile` run on its first batch, which it then trains on.

  Args:
    compiled: the XLA-compiled `make_gradients` function (the training
      step's own, `train_step.gradients`).
    reference: the uncompiled `make_gradients(model, ...)`.
    model: their model (built under `strategy`'s scope).
    strategy: the tf.distribute strategy.
    features, labels: one (distributed) batch.
    bound: the relative difference allowed (`compiled_step_bound`).

  Returns:
    {"relative_difference": |g_xla - g| / |g| over every gradient,
     "loss_difference": relative, "bound", "worst_variable",
     "inconclusive": True when the uncompiled step itself is not finite
     (then nothing is compared; that step is skipped as bad anyway)}.

  Raises:
    CompiledStepMismatch: a gradient or the loss is not finite in the
      compiled step only, or the two differ by more than `bound`; the
      message names the variable and the figures.
  """
  names = _variable_names(model)

  def restore(state):
    for variable, value in zip(model.non_trainable_variables, state):
      variable.assign(value)

  def replica(features, labels):
    state = [tf.identity(v) for v in model.non_trainable_variables]
    got, _, got_loss, _, _ = compiled(features, labels)
    restore(state)
    want, _, want_loss, _, _ = reference(features, labels)
    restore(state)
    stats = {"loss": tf.stack([got_loss, want_loss])}
    for key in ("difference", "norm", "bad_compiled", "bad_reference"):
      stats[key] = []
    for g, w in zip(got, want):
      if g is None or w is None:
        g = w = tf.zeros([])
      g, w = tf.cast(g, tf.float32), tf.cast(w, tf.float32)
      finite = tf.math.is_finite(g) & tf.math.is_finite(w)
      stats["difference"].append(tf.reduce_sum(tf.square(
          tf.where(finite, g - w, 0.0))))
      stats["norm"].append(tf.reduce_sum(tf.square(
          tf.where(tf.math.is_finite(w), w, 0.0))))
      stats["bad_compiled"].append(tf.reduce_sum(tf.cast(
          ~tf.math.is_finite(g), tf.float32)))
      stats["bad_reference"].append(tf.reduce_sum(tf.cast(
          ~tf.math.is_finite(w), tf.float32)))
    return {key: tf.stack(value) for key, value in stats.items()}

  @tf.function
  def both(features, labels):
    per_replica = strategy.run(replica, args=(features, labels))
    return {key: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
            for key, value in per_replica.items()}

  stats = {key: value.numpy() for key, value in both(features, labels).items()}
  got_loss, want_loss = (float(x) for x in stats["loss"])
  sizes = [int(np.prod(v.shape)) for v in model.trainable_variables]
  where = (f"TensorFlow {tf.__version__}, CPU "
           f"{cpu_features.cpu_features().model or 'unknown'}")
  if stats["bad_reference"].sum() or not np.isfinite(want_loss):
    logging.warning(
        "train.jit_compile self-check inconclusive: the uncompiled step on "
        "the first batch is not finite itself (loss %g; %d gradient entries)",
        want_loss, int(stats["bad_reference"].sum()))
    return {"relative_difference": None, "loss_difference": None,
            "bound": bound, "worst_variable": None, "inconclusive": True}
  if stats["bad_compiled"].sum() or not np.isfinite(got_loss):
    first = int(np.argmax(stats["bad_compiled"] > 0))
    raise CompiledStepMismatch(
        "train.jit_compile: the XLA-compiled training step differs from the "
        f"uncompiled one on this machine ({where}): "
        f"{int(stats['bad_compiled'].sum())} of {sum(sizes)} gradient entries "
        f"are not finite (first {names[first]}: "
        f"{int(stats['bad_compiled'][first])} of {sizes[first]}; loss "
        f"{got_loss:.6g}) where the uncompiled step's are all finite (loss "
        f"{want_loss:.6g}); train without XLA (train.jit_compile=false)")
  relative = float(np.sqrt(stats["difference"].sum()
                           / max(stats["norm"].sum(), np.finfo(np.float32).tiny)))
  loss_difference = abs(got_loss - want_loss) / max(abs(want_loss), 1e-30)
  worst = names[int(np.argmax(stats["difference"]))]
  if relative > bound or loss_difference > bound:
    raise CompiledStepMismatch(
        "train.jit_compile: the XLA-compiled training step differs from the "
        f"uncompiled one on this machine ({where}): gradients "
        f"{relative:.3g} apart relative to their norm (most in {worst}), loss "
        f"{got_loss:.6g} vs {want_loss:.6g} ({loss_difference:.3g} relative), "
        f"beyond the float round-off bound {bound:.3g}; train without XLA "
        "(train.jit_compile=false)")
  return {"relative_difference": relative, "loss_difference": loss_difference,
          "bound": float(bound), "worst_variable": worst,
          "inconclusive": False}


class WorkerCheckpoints:
  """Saves and resumes a run's `tf.train.Checkpoint` under any strategy.

  Every worker saves (the multi-worker contract: saving is collective); only
  the chief's copy lands in `<workdir>/checkpoints`, the other workers write
  to a scratch folder that `close` removes. Resuming reads the workdir's
  latest checkpoint on every worker.
  """

  def __init__(self, checkpoint: tf.train.Checkpoint, workdir: str,
               strategy: tf.distribute.Strategy, max_to_keep: int):
    self.checkpoint = checkpoint
    self.workdir = workdir
    self._scratch = None
    directory = workdir_lib.checkpoint_dir(workdir)
    if not distribute.is_chief(strategy):
      self._scratch = tempfile.mkdtemp(
          prefix=f"l3_ckpt_{distribute.worker_name(strategy)}_")
      directory = self._scratch
    self._manager = tf.train.CheckpointManager(checkpoint, directory,
                                               max_to_keep=max_to_keep)

  def latest(self) -> str | None:
    return workdir_lib.latest_checkpoint(self.workdir)

  def restore(self) -> str | None:
    """Restores the latest checkpoint of the workdir; returns it (or None)."""
    latest = self.latest()
    if latest is not None:
      self.checkpoint.restore(latest).assert_consumed()
    return latest

  def save(self, step: int) -> str | None:
    return self._manager.save(checkpoint_number=step)

  def discard(self, prefix: str) -> None:
    """Removes checkpoint `prefix` (written by this run) and its entry in
    the state file, which keeps naming the others."""
    directory = self._manager.directory
    state = tf.train.get_checkpoint_state(directory)
    # As `get_checkpoint_state` gives them: joined to `directory`, which
    # `update_checkpoint_state` takes away again for a relative one.
    remaining = [p for p in (state.all_model_checkpoint_paths if state else [])
                 if os.path.basename(p) != os.path.basename(prefix)]
    if remaining:
      tf.compat.v1.train.update_checkpoint_state(directory, remaining[-1],
                                                 remaining)
    elif tf.io.gfile.exists(os.path.join(directory, "checkpoint")):
      tf.io.gfile.remove(os.path.join(directory, "checkpoint"))
    for path in tf.io.gfile.glob(prefix + ".*"):
      tf.io.gfile.remove(path)

  def close(self):
    if self._scratch:
      shutil.rmtree(self._scratch, ignore_errors=True)


class _Trainer:
  """The model, optimizer, checkpoint and step function of one run."""

  def __init__(self, config, strategy, plan: Plan, workdir: str,
               prepare_model=None):
    self.config = config
    self.strategy = strategy
    self.plan = plan
    self.chief = distribute.is_chief(strategy)
    with strategy.scope():
      keras.utils.set_random_seed(config.train.seed)
      self.model = model_lib.avc_network(config.model, config.image,
                                         config.audio)
      if prepare_model is not None:  # before restoring: a resume wins
        prepare_model(self.model)
      self.precision = precision_lib.resolve(config.train)
      self.optimizer = precision_lib.wrap_optimizer(
          keras.optimizers.Adam(learning_rate_schedule(config.train)),
          self.precision, config.train)
      # Built now: restoring into an unbuilt Keras 3 optimizer silently
      # drops its slot variables.
      self.optimizer.build(self.model.trainable_variables)
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
      self.data_seed = tf.Variable(0, dtype=tf.int64, trainable=False,
                                   name="data_seed")
    self.checkpoint = tf.train.Checkpoint(
        model=self.model, optimizer=self.optimizer, step=self.step,
        data_seed=self.data_seed)
    self.checkpoints = WorkerCheckpoints(
        self.checkpoint, workdir, strategy, config.train.keep_checkpoints)
    self.train_step = make_train_step(
        self.model, self.optimizer, strategy, plan.global_batch_size,
        self.step, jit_compile=config.train.jit_compile)
    self.train_loop = None
    if config.train.steps_per_loop > 1:
      self.train_loop = make_train_step(
          self.model, self.optimizer, strategy, plan.global_batch_size,
          self.step, jit_compile=config.train.jit_compile, loop=True)

  def check_compiled_step(self, features, labels) -> dict:
    """`check_compiled_step` of this run's XLA step on one (its first) batch.

    Raises:
      CompiledStepMismatch: XLA computes another step than TensorFlow here.
    """
    bound = compiled_step_bound(self.model, self.plan.batch_size_per_replica,
                                self.precision)
    reference = make_gradients(self.model, self.optimizer,
                               self.plan.global_batch_size)
    result = check_compiled_step(self.train_step.gradients, reference,
                                 self.model, self.strategy, features, labels,
                                 bound)
    if not result["inconclusive"]:
      logging.info(
          "train.jit_compile self-check passed: the XLA step's gradients are "
          "%.3g apart from the uncompiled step's (relative; loss %.3g), "
          "within the round-off bound %.3g", result["relative_difference"],
          result["loss_difference"], bound)
    return result

  def check_finite(self, source: str) -> None:
    """`finite.check_model` of the model, then the optimizer's variables
    (Adam's moments can overflow while the weights stay finite).

    Raises:
      finite.NonFiniteError: naming `source` and the variable or output.
    """
    finite.check_model(self.model, source)
    finite.check_variables([(f"optimizer/{v.path}", v.numpy())
                            for v in self.optimizer.variables], source)

  def restore(self) -> int:
    """Restores the workdir's latest checkpoint, if any; returns the step.

    Raises:
      finite.NonFiniteError: a variable of the checkpoint (the model's or
        the optimizer's) holds NaN or inf (it is named), or the model's
        logits of the probe pair are not finite.
    """
    precision_lib.check_resume(self.checkpoints.latest(), self.optimizer)
    restored = self.checkpoints.restore()
    if restored is not None:
      self.check_finite(f"checkpoint {restored} (resuming)")
      logging.info("resumed from %s (step %d)", restored,
                   int(self.step.numpy()))
    return int(self.step.numpy())

  def problem(self) -> str | None:
    """Why the current weights must not be saved (None: they may be): a
    variable holds NaN or inf, or the probe pair's logits are not finite."""
    try:
      self.check_finite(f"the weights at step {int(self.step.numpy())}")
    except finite.NonFiniteError as e:
      return str(e)
    return None

  def save(self) -> str | None:
    """Writes a checkpoint of the current step unless `problem()` finds
    something (logged; None returned)."""
    problem = self.problem()
    if problem is not None:
      logging.error("checkpoint not written: %s", problem)
      return None
    return self.checkpoints.save(int(self.step.numpy()))

  def close(self):
    self.checkpoints.close()

  def learning_rate(self) -> float:
    return float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))


def _summary_writer(path: str, chief: bool):
  return (tf.summary.create_file_writer(path) if chief
          else tf.summary.create_noop_writer())


def train_and_evaluate(config, workdir: str,
                       strategy: tf.distribute.Strategy | None = None,
                       prepare_model=None) -> dict:
  """Trains the AVC network to `config.train.num_steps`, then evaluates it.

  Args:
    config: an `l3_tf.training.config.Config`.
    workdir: where config.json, checkpoints/, summaries and eval JSON go.
    strategy: default the current (default: one device) strategy.
    prepare_model: optional `f(avc_network)` called once the model is built
      (under the strategy's scope, before the optimizer is built and any
      checkpoint restored), e.g. to load trunks and freeze them
      (`l3_tf.evaluation.baselines`, supervised pretraining).

  Returns:
    {"step", "start_step", "wall_seconds" (of the training loop),
     "steps_per_second", "pairs_per_second" (both without the first,
     tracing step), "last_train_metrics", "skipped_records" (records left
     out under data.on_bad_record="skip"), "eval" (the chief's
     `evaluate_workdir` results; None on other workers)}.

  Raises:
    ValueError: bad configuration (see `check_config`), before any work.
    workdir_lib.WorkdirLocked: another live process trains in `workdir`.
    TrainingInterrupted: SIGTERM or Ctrl-C; a checkpoint of the last
      finished step was written first.
    TrainingDiverged: `train.max_bad_steps` consecutive steps with a
      non-finite loss or gradient (none applied), or final weights that are
      not finite or compute non-finite logits; no checkpoint of such
      weights is left, the error names the last good one.
    CompiledStepMismatch: with `train.jit_compile`, XLA's step on the first
      batch differs from the uncompiled one beyond round-off (checked
      before any step is applied; `check_compiled_step`).
  """
  strategy = strategy or tf.distribute.get_strategy()
  filesystems.prepare(workdir, "workdir")
  logging.info("%s", describe_plan(config, strategy))
  plan = check_config(config, strategy.num_replicas_in_sync,
                      distribute.num_workers(strategy))
  chief = distribute.is_chief(strategy)
  # One writer per workdir: fails at once if another live trainer holds it.
  lock = workdir_lib.WorkdirLock(workdir) if chief else None
  if chief:
    workdir_lib.write_config(workdir, config)
  precision = precision_lib.resolve(config.train)
  if precision == "bfloat16" and not tf.config.list_logical_devices("GPU"):
    cpu_features.warn_if_bf16_is_slow(precision)
  trainer = None
  try:
    with precision_lib.policy_scope(precision):
      trainer = _Trainer(config, strategy, plan, workdir, prepare_model)
      result = _run(config, workdir, strategy, plan, trainer)
  finally:
    if trainer is not None:
      trainer.close()
    if lock is not None:
      lock.release()
  if chief:
    # The same path as experiments.eval_avc: a float32 model restored from
    # the checkpoint just written.
    results = evaluate_lib.evaluate_workdir(workdir)
    writer = tf.summary.create_file_writer(os.path.join(workdir, "eval"))
    with writer.as_default(step=results["step"]):
      for key in ("accuracy", "loss"):
        tf.summary.scalar(key, results[key])
    writer.close()
    result["eval"] = results
  return result


def _count_bad_steps(bad_steps: int, metrics: dict, num_steps: int,
                     step: int) -> int:
  """Consecutive bad (skipped) steps after a call that ran `num_steps`.

  `metrics` of `train_step` or `train_loop`: "good_steps" applied, and
  "bad_steps" in a row at the end of the call.
  """
  good = int(metrics["good_steps"])
  trailing = int(metrics["bad_steps"])
  in_a_row = trailing if good else bad_steps + trailing
  if num_steps - good:
    logging.warning("%d of %d step(s) up to step %d had a non-finite loss or "
                    "gradient: not applied (%d in a row)", num_steps - good,
                    num_steps, step, in_a_row)
  return in_a_row


def _skip_bad_records(config, plan: Plan, skip_log, step: int, error) -> dict:
  """Logs the damaged records `error` came from; what to read instead."""
  split = config.data.train_split
  bad = bad_records.locate_any(plan.builder, split, error)
  if not bad or all(b in skip_log.skipped for b in bad):
    raise bad_records.error_for(plan.builder, split, error) from None
  skip_log.add(step, split, bad)
  logging.warning("skipping %d unreadable record(s) of split %r (%d so far, "
                  "listed in %s): %s", sum(b.records_skipped for b in bad),
                  split, skip_log.count, skip_log.path,
                  "; ".join(b.describe() for b in bad))
  without = bad_records.split_without(split, skip_log.skipped)
  return {"config": dataclasses.replace(config, data=dataclasses.replace(
              config.data, train_split=without)),
          "seed": input_pipeline.derive_seed(config.train.seed, step,
                                             len(skip_log.skipped))}


def _run(config, workdir, strategy, plan: Plan, trainer: _Trainer) -> dict:
  train_cfg = config.train
  chief = trainer.chief
  start_step = trainer.restore()
  seed = pipeline_seed(train_cfg.seed, start_step)
  trainer.data_seed.assign(seed)
  logging.info("%s: start at step %d of %d, %d replica(s) x %d = %d pairs "
               "per step, pipeline seed %d", distribute.worker_name(strategy),
               start_step, train_cfg.num_steps, plan.num_replicas,
               plan.batch_size_per_replica, plan.global_batch_size, seed)

  # What is read: with data.on_bad_record="skip", the split without the
  # damaged records met so far, and a new seed after each.
  reading = {"config": config, "seed": seed}

  def dataset_fn(context: tf.distribute.InputContext):
    batch = context.get_per_replica_batch_size(plan.global_batch_size)
    return input_pipeline.train_dataset(
        reading["config"], batch, context, seed=reading["seed"],
        builder=plan.builder,
        service_address=reading["config"].data.service_address)

  train_writer = _summary_writer(os.path.join(workdir, "train"), chief)
  eval_writer = _summary_writer(os.path.join(workdir, "eval"), chief)
  skip_log = bad_records.SkipLog(workdir if chief else None, train_writer)
  step = start_step
  last_saved = start_step if start_step else -1
  # The checkpoint of the weights being trained from while no step from
  # them has computed a finite loss: it is good only once one has
  # (`TrainingDiverged`). At first the one resumed from (not ours to remove).
  unconfirmed = trainer.checkpoints.latest() if start_step else None
  unconfirmed_is_ours = False
  window = {"loss": [], "regularization": [], "accuracy": []}
  window_seconds, window_steps = 0.0, 0
  timed_seconds, timed_steps = 0.0, 0
  loop_started = time.perf_counter()
  traced = set()
  last_metrics = {}
  interrupted = None
  diverged = None
  bad_steps = 0  # consecutive
  # XLA's step is checked against the uncompiled one on the first batch,
  # before anything is applied (`check_compiled_step`).
  check_pending = train_cfg.jit_compile

  with _StopFlag() as stop, progress_lib.StepProgress(
      train_cfg.num_steps, start_step, plan.global_batch_size,
      enabled=None if chief else False) as progress:
    iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
    try:
      while step < train_cfg.num_steps and stop.reason is None:
        started = time.perf_counter()
        loop_steps = 1 if check_pending else steps_in_next_loop(step,
                                                                 train_cfg)
        try:
          if loop_steps > 1:  # several steps in one call, no batch seen here
            features = labels = None
            metrics = trainer.train_loop(iterator, tf.constant(loop_steps))
          else:
            features, labels = next(iterator)
            if check_pending:
              trainer.check_compiled_step(features, labels)
              check_pending = False
            metrics = trainer.train_step(features, labels)
        except (StopIteration, tf.errors.OutOfRangeError):
          raise input_pipeline.DatasetError(
              f"split {config.data.train_split!r} of {config.data.dataset!r} "
              "gave no pairs: none of its videos (in this worker's shard) "
              "has >= 1 s of audio around a frame") from None
        except (tf.errors.DataLossError,
                tf.errors.InvalidArgumentError) as e:
          if not bad_records.is_bad_input(e):  # a damaged shard or frame
            raise
          step = int(trainer.step.numpy())
          if config.data.on_bad_record == "fail":
            if step != last_saved and step > 0:
              trainer.save()  # the last good step first
              last_saved = step
            raise bad_records.error_for(plan.builder, config.data.train_split,
                                        e) from None
          reading.update(_skip_bad_records(config, plan, skip_log, step, e))
          iterator = iter(strategy.distribute_datasets_from_function(
              dataset_fn))
          continue
        step = int(trainer.step.numpy())
        elapsed = time.perf_counter() - started
        good_steps = int(metrics["good_steps"])
        if good_steps:  # a step from the last checkpoint's weights was finite
          unconfirmed = None
        bad_steps = _count_bad_steps(bad_steps, metrics, loop_steps, step)
        if bad_steps >= train_cfg.max_bad_steps:
          diverged = bad_steps
          break
        if not good_steps:
          continue  # nothing was applied: no logs, no checkpoint
        for key in window:
          window[key].extend([float(metrics[key])] * good_steps)
        progress.update(step, elapsed, window["loss"][-1])
        # The first call of each function traces it: keep it out of the rates.
        kind = "loop" if loop_steps > 1 else "step"
        if kind in traced:
          timed_seconds += elapsed
          timed_steps += loop_steps
          window_seconds += elapsed
          window_steps += loop_steps
        traced.add(kind)
        if step % train_cfg.log_every_steps == 0 or step == train_cfg.num_steps:
          last_metrics = {key: float(np.mean(values))
                          for key, values in window.items()}
          last_metrics["learning_rate"] = trainer.learning_rate()
          if window_steps:
            last_metrics["pairs_per_second"] = (
                plan.global_batch_size * window_steps / window_seconds)
          with train_writer.as_default(step=step):
            for key, value in last_metrics.items():
              tf.summary.scalar(key, value)
          logging.info("step %d: %s", step, {k: round(v, 4) for k, v in
                                             last_metrics.items()})
          window = {key: [] for key in window}
          window_seconds, window_steps = 0.0, 0
        images_every = train_cfg.summary_images_every_steps
        if (images_every and (step % images_every == 0 or step == 1) and chief
            and features is not None):
          local = strategy.experimental_local_results
          with train_writer.as_default(step=step):
            for tag, images in pair_images(local(features)[0], local(labels)[0],
                                           train_cfg.summary_images).items():
              tf.summary.image(tag, images, max_outputs=train_cfg.summary_images,
                               description="left: frame, right: log-spectrogram")
        if step % train_cfg.checkpoint_every_steps == 0:
          unconfirmed, unconfirmed_is_ours = trainer.save(), True
          last_saved = step
        if (train_cfg.eval_every_steps and step % train_cfg.eval_every_steps == 0
            and step < train_cfg.num_steps and chief):
          results = evaluate_lib.evaluate_model(
              trainer.model, config, builder=plan.builder,
              source=f"the model at step {step}")
          with eval_writer.as_default(step=step):
            for key in ("accuracy", "loss"):
              tf.summary.scalar(key, results[key])
          logging.info("step %d eval on %s: accuracy %.4f", step,
                       results["split"], results["accuracy"])
    except KeyboardInterrupt:
      interrupted = "KeyboardInterrupt"
    interrupted = interrupted or stop.reason
    step = int(trainer.step.numpy())
    train_writer.flush()
    if diverged:
      # The weights at `step` computed only non-finite losses: not saved,
      # and a checkpoint of them written earlier by this run is removed.
      reason = (f"{diverged} consecutive steps had a non-finite loss or "
                "gradient and were not applied (limit train.max_bad_steps)")
      if unconfirmed is not None and unconfirmed_is_ours and chief:
        logging.warning("removing %s: every step after it had a non-finite "
                        "loss or gradient", unconfirmed)
        trainer.checkpoints.discard(unconfirmed)
      good = trainer.checkpoints.latest()
      if unconfirmed is not None and not unconfirmed_is_ours:
        reason += (f"; no step from {unconfirmed}, which it resumed from, "
                   "was finite either")
        good = None
      raise TrainingDiverged(step, reason, good)
    saved = None
    if step != last_saved and step > 0:
      saved = trainer.save()  # checks the weights and a probe pass first
      if saved is None:
        raise TrainingDiverged(step, trainer.problem() or "not saved",
                               trainer.checkpoints.latest())
    if interrupted:
      raise TrainingInterrupted(step, interrupted)

  return {
      "step": step,
      "start_step": start_step,
      "wall_seconds": time.perf_counter() - loop_started,
      "steps_per_second": timed_steps / timed_seconds if timed_seconds else None,
      "pairs_per_second": (plan.global_batch_size * timed_steps / timed_seconds
                           if timed_seconds else None),
      "last_train_metrics": last_metrics,
      "skipped_records": skip_log.count,
      "eval": None,
  }
