"""The training loop, under any tf.distribute strategy, for every task.

`train(task, config, workdir, strategy)` trains a `task.Task` (the AVC
networks, the supervised classifiers of the baselines, fine-tuning) with
one loop: checkpoints and resuming, SIGTERM, the non-finite guard,
TensorBoard and the progress bar are written here once.

`train_and_evaluate(config, workdir, strategy)` (AVC) validates the config, writes
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
import signal
import threading
import time

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from l3_tf.data import bad_records
from l3_tf.data import input_pipeline
from l3_tf.model import finite
from l3_tf.model import precision as precision_lib
from l3_tf.platform import cpu_features
from l3_tf.platform import filesystems
from l3_tf.training import compiled_check
from l3_tf.training import distribute
from l3_tf.training import evaluate as evaluate_lib
from l3_tf.training import plan as plan_lib
from l3_tf.training import progress as progress_lib
from l3_tf.training import schedule as schedule_lib
from l3_tf.training import step as step_lib
from l3_tf.training import task as task_lib
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


class _StopFlag:
  """Turns SIGTERM into a request to stop after the current call (one step,
  or one loop of `train.steps_per_loop` steps)."""

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


class _Trainer:
  """The model, optimizer, checkpoint and step function of one run."""

  def __init__(self, task: task_lib.Task, config, strategy,
               plan: plan_lib.Plan, workdir: str):
    self.task = task
    self.config = config
    self.strategy = strategy
    self.plan = plan
    self.chief = distribute.is_chief(strategy)
    with strategy.scope():
      keras.utils.set_random_seed(config.train.seed)
      self.model = task.build_model()
      self.precision = precision_lib.resolve(config.train)
      self.optimizer = precision_lib.wrap_optimizer(
          keras.optimizers.Adam(schedule_lib.learning_rate_schedule(config.train)),
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
    self.checkpoints = workdir_lib.WorkerCheckpoints(
        self.checkpoint, workdir, strategy, config.train.keep_checkpoints)
    self.train_step = step_lib.make_train_step(
        self.model, self.optimizer, strategy, plan.global_batch_size,
        self.step, jit_compile=config.train.jit_compile,
        objective=task.objective)
    self.train_loop = None
    if config.train.steps_per_loop > 1:
      self.train_loop = step_lib.make_train_step(
          self.model, self.optimizer, strategy, plan.global_batch_size,
          self.step, jit_compile=config.train.jit_compile, loop=True,
          objective=task.objective)

  def check_compiled_step(self, features, labels) -> dict:
    """`check_compiled_step` of this run's XLA step on one (its first) batch.

    Raises:
      compiled_check.CompiledStepMismatch: XLA computes another step than TensorFlow here.
    """
    bound = compiled_check.compiled_step_bound(self.model, self.plan.batch_size_per_replica,
                                self.precision)
    reference = step_lib.make_gradients(self.model, self.optimizer,
                                        self.plan.global_batch_size,
                                        self.task.objective)
    result = compiled_check.check_compiled_step(self.train_step.gradients, reference,
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
    """The task's `check_model` of the model (`finite.check_model` for
    AVC), then the optimizer's variables (Adam's moments can overflow while
    the weights stay finite).

    Raises:
      finite.NonFiniteError: naming `source` and the variable or output.
    """
    self.task.check_model(self.model, source)
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
      previous = schedule_lib.set_configured_rate(self.optimizer,
                                                  self.config.train)
      if previous is not None:
        logging.info("train.learning_rate %g from the config, instead of "
                     "the %g of %s", self.learning_rate(), previous, restored)
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
    compiled_check.CompiledStepMismatch: with `train.jit_compile`, XLA's step on the first
      batch differs from the uncompiled one beyond round-off (checked
      before any step is applied; `check_compiled_step`).
  """
  strategy = strategy or tf.distribute.get_strategy()
  result = train(task_lib.avc_task(config, prepare_model), config, workdir,
                 strategy)
  if distribute.is_chief(strategy):
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


def train(task: task_lib.Task, config, workdir: str,
          strategy: tf.distribute.Strategy | None = None) -> dict:
  """Trains `task` to `config.train.num_steps` in `workdir` (or resumes).

  Args:
    task: the network, objective and data (`task.avc_task`, ...).
    config: an `l3_tf.training.config.Config`; its `train` section drives
      the loop (steps, batch, learning rate, periods, seed, precision).
    workdir: checkpoints/, summaries (train/, eval/) and what
      `task.write_workdir` writes.
    strategy: default the current (default: one device) strategy.

  Returns:
    {"step", "start_step", "wall_seconds" (of the training loop),
     "steps_per_second", "pairs_per_second" (both without the first,
     tracing step; pairs are the task's examples), "last_train_metrics",
     "history" (every logged `last_train_metrics`, with its "step"),
     "skipped_records", "eval": None}.

  Raises:
    as `train_and_evaluate`, whose training part this is.
  """
  strategy = strategy or tf.distribute.get_strategy()
  filesystems.prepare(workdir, "workdir")
  logging.info("%s: %s", task.name, plan_lib.describe_plan(
      config, strategy, task.input_description))
  plan = task.plan(config, strategy.num_replicas_in_sync,
                   distribute.num_workers(strategy))
  precision = precision_lib.resolve(config.train)
  if precision == "bfloat16" and not tf.config.list_logical_devices("GPU"):
    blocked = cpu_features.bf16_blocked_by_isa_cap()
    if blocked:  # before anything is built: TensorFlow would abort mid-step
      raise ValueError(f"train.precision='bfloat16' cannot run here: {blocked}")
    cpu_features.warn_if_bf16_is_slow(precision)
  chief = distribute.is_chief(strategy)
  # One writer per workdir: fails at once if another live trainer holds it.
  lock = workdir_lib.WorkdirLock(workdir) if chief else None
  if chief:
    task.write_workdir(workdir)
  trainer = None
  try:
    with precision_lib.policy_scope(precision):
      trainer = _Trainer(task, config, strategy, plan, workdir)
      return _run(config, workdir, strategy, plan, trainer)
  finally:
    if trainer is not None:
      trainer.close()
    if lock is not None:
      lock.release()


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


def _skip_bad_records(config, plan: plan_lib.Plan, skip_log, step: int, error) -> dict:
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


def _run(config, workdir, strategy, plan: plan_lib.Plan, trainer: _Trainer) -> dict:
  train_cfg = config.train
  task = trainer.task
  chief = trainer.chief
  start_step = trainer.restore()
  seed = plan_lib.pipeline_seed(train_cfg.seed, start_step)
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
    return task.dataset(reading["config"], batch, context, reading["seed"],
                        plan.builder)

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
  window = {key: [] for key in
            ("loss", "regularization") + task.objective.metric_names}
  history = []
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
        loop_steps = 1 if check_pending else plan_lib.steps_in_next_loop(step,
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
          # A damaged shard or frame of the task's TFDS dataset.
          if plan.builder is None or not bad_records.is_bad_input(e):
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
          history.append({"step": step, **last_metrics})
          logging.info("%s step %d: %s", task.name, step,
                       {k: round(v, 4) for k, v in last_metrics.items()})
          window = {key: [] for key in window}
          window_seconds, window_steps = 0.0, 0
        images_every = train_cfg.summary_images_every_steps
        if (task.image_summaries and images_every and features is not None
            and (step % images_every == 0 or step == 1) and chief):
          local = strategy.experimental_local_results
          with train_writer.as_default(step=step):
            for tag, images in task_lib.pair_images(
                local(features)[0], local(labels)[0],
                train_cfg.summary_images).items():
              tf.summary.image(tag, images, max_outputs=train_cfg.summary_images,
                               description="left: frame, right: log-spectrogram")
        if step % train_cfg.checkpoint_every_steps == 0:
          unconfirmed, unconfirmed_is_ours = trainer.save(), True
          last_saved = step
        if (task.evaluate and train_cfg.eval_every_steps and chief
            and step % train_cfg.eval_every_steps == 0
            and step < train_cfg.num_steps):
          results = task.evaluate(trainer.model, config, plan.builder, step)
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
      "history": history,
      "skipped_records": skip_log.count,
      "eval": None,
  }
