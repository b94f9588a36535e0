"""A training run's plan: the config checked before anything runs, what the
run will do in words, and where its loops and input seeds fall."""

import dataclasses

import tensorflow as tf

from l3_tf.data import bad_records
from l3_tf.data import data_service
from l3_tf.data import input_pipeline
from l3_tf.model import precision as precision_lib
from l3_tf.training import distribute
from l3_tf.training import schedule


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


def check_config(config, num_replicas: int = 1, num_workers: int = 1,
                 balanced: bool = True) -> Plan:
  """Checks a config before anything runs; names the first problem found.

  `balanced`: batches hold as many positives as negatives (AVC pairs), so
  the batch per replica must be even; False for labelled examples (the
  supervised classifiers).

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
  if train.learning_rate_decay not in schedule.LEARNING_RATE_DECAYS:
    raise ValueError(f"train.learning_rate_decay={train.learning_rate_decay!r}"
                     f"; expected one of {list(schedule.LEARNING_RATE_DECAYS)}")
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
  if balanced and per_replica % 2:
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


def describe_plan(config, strategy: tf.distribute.Strategy,
                  input_description: str | None = None) -> str:
  """What a run will do, in a few lines (logged before anything else).

  `input_description`: the "input:" line (default the split of
  `config.data` and where its pipeline runs).

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
      "input: " + (input_description or
                   f"{data.dataset!r} split {data.train_split!r}, {source}"),
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
