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

from l3_tf import cpu_features
from l3_tf import distribute
from l3_tf import evaluate as evaluate_lib
from l3_tf import input_pipeline
from l3_tf import model as model_lib
from l3_tf import progress as progress_lib
from l3_tf import workdir as workdir_lib


class TrainingInterrupted(Exception):
  """Training stopped early (signal or Ctrl-C); a checkpoint was written."""

  def __init__(self, step: int, reason: str):
    super().__init__(f"training interrupted by {reason} at step {step}; "
                     "checkpoint written, rerun the same command to resume")
    self.step = step
    self.reason = reason


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
                       ("data.shuffle_videos", data.shuffle_videos),
                       ("data.pairs_per_video", data.pairs_per_video),
                       ("data.eval_num_pairs", data.eval_num_pairs),
                       ("data.eval_batch_size", data.eval_batch_size)):
    if value <= 0:
      raise ValueError(f"{where}={value} must be > 0")
  if train.learning_rate <= 0:
    raise ValueError(f"train.learning_rate={train.learning_rate} must be > 0")
  if not 0 <= train.audio_gain_max < 1:
    raise ValueError(f"train.audio_gain_max={train.audio_gain_max} must be "
                     "in [0, 1)")
  if data.group_videos < 3:
    raise ValueError(
        f"data.group_videos={data.group_videos} must be >= 3: a group of 2 "
        "can hold the same video twice across an epoch boundary")
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


def pipeline_seed(seed: int, start_step: int) -> int:
  """The input-pipeline seed of a run that starts at `start_step`."""
  return input_pipeline.derive_seed(seed, start_step)


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


def make_train_step(model: keras.Model, optimizer, strategy,
                    global_batch_size: int, step: tf.Variable):
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

  Returns:
    A tf.function taking distributed (or plain, one replica) features and
    int32 labels, returning {"loss": data loss, "regularization",
    "accuracy"} reduced over the global batch.
  """

  def replica_step(features, labels):
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
    grads = tape.gradient(total, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    correct = tf.reduce_sum(tf.cast(
        tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), labels),
        tf.float32))
    return loss, regularization, correct

  def total(value):
    return strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)

  @tf.function
  def train_step(features, labels):
    loss, regularization, correct = strategy.run(replica_step,
                                                 args=(features, labels))
    step.assign_add(1)
    return {"loss": total(loss), "regularization": total(regularization),
            "accuracy": total(correct) / global_batch_size}

  return train_step


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
      self.optimizer = keras.optimizers.Adam(config.train.learning_rate)
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
    self.train_step = make_train_step(self.model, self.optimizer, strategy,
                                      plan.global_batch_size, self.step)

  def restore(self) -> int:
    """Restores the workdir's latest checkpoint, if any; returns the step."""
    if self.checkpoints.restore() is not None:
      logging.info("resumed from %s (step %d)",
                   self.checkpoints.latest(), int(self.step.numpy()))
    return int(self.step.numpy())

  def save(self) -> str | None:
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
    config: an `l3_tf.config.Config`.
    workdir: where config.json, checkpoints/, summaries and eval JSON go.
    strategy: default the current (default: one device) strategy.
    prepare_model: optional `f(avc_network)` called once the model is built
      (under the strategy's scope, before the optimizer is built and any
      checkpoint restored), e.g. to load trunks and freeze them
      (`l3_tf.baselines`, supervised pretraining).

  Returns:
    {"step", "start_step", "wall_seconds" (of the training loop),
     "steps_per_second", "pairs_per_second" (both without the first,
     tracing step), "last_train_metrics", "eval" (the chief's
     `evaluate_workdir` results; None on other workers)}.

  Raises:
    ValueError: bad configuration (see `check_config`), before any work.
    TrainingInterrupted: SIGTERM or Ctrl-C; a checkpoint of the last
      finished step was written first.
  """
  strategy = strategy or tf.distribute.get_strategy()
  plan = check_config(config, strategy.num_replicas_in_sync,
                      distribute.num_workers(strategy))
  chief = distribute.is_chief(strategy)
  if chief:
    workdir_lib.write_config(workdir, config)
  previous_policy = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy(
      "mixed_bfloat16" if config.train.mixed_precision else "float32")
  if config.train.mixed_precision and not tf.config.list_logical_devices("GPU"):
    cpu_features.warn_if_bf16_is_slow("bfloat16")
  trainer = None
  try:
    trainer = _Trainer(config, strategy, plan, workdir, prepare_model)
    result = _run(config, workdir, strategy, plan, trainer)
  finally:
    if trainer is not None:
      trainer.close()
    keras.mixed_precision.set_global_policy(previous_policy)
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

  def dataset_fn(context: tf.distribute.InputContext):
    batch = context.get_per_replica_batch_size(plan.global_batch_size)
    return input_pipeline.train_dataset(config, batch, context, seed=seed,
                                        builder=plan.builder)

  train_writer = _summary_writer(os.path.join(workdir, "train"), chief)
  eval_writer = _summary_writer(os.path.join(workdir, "eval"), chief)
  step = start_step
  last_saved = start_step if start_step else -1
  window = {"loss": [], "regularization": [], "accuracy": []}
  window_seconds, window_steps = 0.0, 0
  timed_seconds, timed_steps = 0.0, 0
  loop_started = time.perf_counter()
  first = True
  last_metrics = {}
  interrupted = None

  with _StopFlag() as stop, progress_lib.StepProgress(
      train_cfg.num_steps, start_step, plan.global_batch_size,
      enabled=None if chief else False) as progress:
    iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
    try:
      while step < train_cfg.num_steps and stop.reason is None:
        started = time.perf_counter()
        try:
          features, labels = next(iterator)
        except (StopIteration, tf.errors.OutOfRangeError):
          raise input_pipeline.DatasetError(
              f"split {config.data.train_split!r} of {config.data.dataset!r} "
              "gave no pairs: none of its videos (in this worker's shard) "
              "has >= 1 s of audio around a frame") from None
        metrics = trainer.train_step(features, labels)
        step = int(trainer.step.numpy())
        elapsed = time.perf_counter() - started
        for key in window:
          window[key].append(float(metrics[key]))
        progress.update(step, elapsed, window["loss"][-1])
        # The first step traces the function: keep it out of the rates.
        if not first:
          timed_seconds += elapsed
          timed_steps += 1
          window_seconds += elapsed
          window_steps += 1
        first = False
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
        if images_every and (step % images_every == 0 or step == 1) and chief:
          local = strategy.experimental_local_results
          with train_writer.as_default(step=step):
            for tag, images in pair_images(local(features)[0], local(labels)[0],
                                           train_cfg.summary_images).items():
              tf.summary.image(tag, images, max_outputs=train_cfg.summary_images,
                               description="left: frame, right: log-spectrogram")
        if step % train_cfg.checkpoint_every_steps == 0:
          trainer.save()
          last_saved = step
        if (train_cfg.eval_every_steps and step % train_cfg.eval_every_steps == 0
            and step < train_cfg.num_steps and chief):
          results = evaluate_lib.evaluate_model(trainer.model, config,
                                                builder=plan.builder)
          with eval_writer.as_default(step=step):
            for key in ("accuracy", "loss"):
              tf.summary.scalar(key, results[key])
          logging.info("step %d eval on %s: accuracy %.4f", step,
                       results["split"], results["accuracy"])
    except KeyboardInterrupt:
      interrupted = "KeyboardInterrupt"
    interrupted = interrupted or stop.reason
    step = int(trainer.step.numpy())
    if step != last_saved and step > 0:
      trainer.save()
    train_writer.flush()
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
      "eval": None,
  }
