"""Distribution, handled in one place: which strategy, which worker is chief.

  TF_CONFIG names >= 2 tasks   -> MultiWorkerMirroredStrategy (synchronous
                                  all-reduce across machines; each worker
                                  mirrors over its local GPUs)
  devices given                -> MirroredStrategy over them (one device:
                                  OneDeviceStrategy)
  >= 2 visible GPUs            -> MirroredStrategy over all of them
  otherwise                    -> the default strategy (one device)

`cpu_replicas=N` first splits the CPU into N logical devices and mirrors
over them, also on every worker of a cluster: a rehearsal of an
N-accelerator run on CPUs (e.g. 2 workers x 8 = the paper's 16 replicas).

The training loop is the same for all: datasets go through
`strategy.distribute_datasets_from_function` with per-replica batches, the
loss is averaged over the *global* batch, and Keras optimizers sum the
replicas' gradients.
"""

import json
import os

import tensorflow as tf


def cluster_tasks(tf_config: str | None = None) -> dict[str, list[str]]:
  """The cluster of TF_CONFIG (default: the environment); {} when unset."""
  raw = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
  if not raw.strip():
    return {}
  try:
    parsed = json.loads(raw)
  except json.JSONDecodeError as e:
    raise ValueError(f"TF_CONFIG is not valid JSON ({e}): {raw!r}") from None
  cluster = parsed.get("cluster", {})
  if not isinstance(cluster, dict):
    raise ValueError(f"TF_CONFIG cluster={cluster!r} must be a mapping")
  return cluster


def make_strategy(devices: tuple[str, ...] | list[str] = (),
                  cpu_replicas: int = 0) -> tf.distribute.Strategy:
  """The strategy for this process (see module docstring).

  Create it before any other TensorFlow op runs: MultiWorkerMirroredStrategy
  must configure the runtime first.

  Args:
    devices: devices to mirror over on this machine; empty for automatic.
    cpu_replicas: if > 0, split the CPU into this many logical devices and
      mirror over them (`train.cpu_replicas`).

  Raises:
    ValueError: a device that does not exist, both `devices` and
      `cpu_replicas`, or a malformed TF_CONFIG.
  """
  if cpu_replicas < 0:
    raise ValueError(f"train.cpu_replicas={cpu_replicas} must be >= 0")
  if cpu_replicas and devices:
    raise ValueError(f"train.devices={tuple(devices)} and train.cpu_replicas="
                     f"{cpu_replicas} are both set; choose one")
  if cpu_replicas:
    split_cpu(cpu_replicas)
    devices = tuple(f"/cpu:{i}" for i in range(cpu_replicas))
  cluster = cluster_tasks()
  num_tasks = sum(len(tasks) for job, tasks in cluster.items()
                  if job in ("chief", "worker"))
  if num_tasks > 1:
    if cpu_replicas > 1:
      return _multi_worker_over_cpus(cpu_replicas)
    return tf.distribute.MultiWorkerMirroredStrategy()
  if devices:
    def key(name):
      spec = tf.DeviceSpec.from_string(name)
      return (spec.device_type or "").upper(), spec.device_index or 0

    visible = [d.name for d in tf.config.list_logical_devices()]
    for device in devices:
      if key(device) not in {key(name) for name in visible}:
        raise ValueError(f"device {device!r} does not exist; visible devices "
                         f"are {visible}")
    if len(devices) == 1:
      return tf.distribute.OneDeviceStrategy(devices[0])
    return tf.distribute.MirroredStrategy(list(devices))
  gpus = tf.config.list_logical_devices("GPU")
  if len(gpus) > 1:
    return tf.distribute.MirroredStrategy()
  if len(gpus) == 1:
    return tf.distribute.OneDeviceStrategy("/gpu:0")
  return tf.distribute.get_strategy()


def _multi_worker_over_cpus(num_devices: int) -> tf.distribute.Strategy:
  """MultiWorkerMirroredStrategy with `num_devices` logical CPUs per worker.

  TensorFlow gives a worker without GPUs exactly one replica (its CPU);
  this overrides that choice, and only that, while the strategy is built.
  The collectives, input distribution and checkpointing are the strategy's
  own.
  """
  # pylint: disable=g-import-not-at-top,protected-access
  from tensorflow.python.distribute import collective_all_reduce_strategy
  extended = collective_all_reduce_strategy.CollectiveAllReduceExtended
  original = extended._initialize_local_devices

  def local_cpus(self, cluster_resolver, worker_device):
    del self, cluster_resolver
    return (tuple(f"{worker_device}/device:CPU:{i}"
                  for i in range(num_devices)), "CPU")

  extended._initialize_local_devices = local_cpus
  try:
    return tf.distribute.MultiWorkerMirroredStrategy()
  finally:
    extended._initialize_local_devices = original


def split_cpu(num_devices: int) -> None:
  """Splits the CPU into `num_devices` logical devices (tests, experiments).

  Must run before TensorFlow initialises its devices.
  """
  cpus = tf.config.list_physical_devices("CPU")
  tf.config.set_logical_device_configuration(
      cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_devices)


def _task(strategy) -> tuple[str | None, int]:
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return None, 0
  return resolver.task_type, int(resolver.task_id or 0)


def num_workers(strategy) -> int:
  """Machines (input pipelines) taking part: 1 unless multi-worker."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None:
    return 1
  spec = resolver.cluster_spec().as_dict()
  return max(1, sum(len(spec.get(job, [])) for job in ("chief", "worker")))


def is_chief(strategy) -> bool:
  """Whether this process writes the workdir (config, checkpoints, results).

  The chief is the "chief" task, or worker 0 when the cluster has none.
  """
  task_type, task_id = _task(strategy)
  if task_type is None or task_type == "chief":
    return True
  if task_type == "worker" and task_id == 0:
    resolver = strategy.cluster_resolver
    return "chief" not in resolver.cluster_spec().as_dict()
  return False


def strategy_name(strategy: tf.distribute.Strategy) -> str:
  """The public name of a strategy ("MultiWorkerMirroredStrategy", ...)."""
  # (The class behind tf.distribute.MultiWorkerMirroredStrategy is named
  # CollectiveAllReduceStrategy.)
  for cls, name in ((tf.distribute.MultiWorkerMirroredStrategy,
                     "MultiWorkerMirroredStrategy"),
                    (tf.distribute.MirroredStrategy, "MirroredStrategy"),
                    (tf.distribute.OneDeviceStrategy, "OneDeviceStrategy")):
    if isinstance(strategy, cls):
      return name
  return "default strategy (one device)"


def worker_name(strategy) -> str:
  task_type, task_id = _task(strategy)
  return "local" if task_type is None else f"{task_type}{task_id}"


def batch_sizes(batch_size_per_replica: int, global_batch_size: int,
                num_replicas: int) -> tuple[int, int]:
  """(per-replica, global) batch sizes of one step.

  Args:
    batch_size_per_replica: used when `global_batch_size` is 0.
    global_batch_size: if > 0, split evenly over the replicas.
    num_replicas: `strategy.num_replicas_in_sync`.

  Raises:
    ValueError: the global batch does not divide evenly among the replicas,
      or a size is not positive.
  """
  if global_batch_size > 0:
    if global_batch_size % num_replicas:
      raise ValueError(
          f"train.global_batch_size={global_batch_size} is not divisible by "
          f"the {num_replicas} replicas in sync; use a multiple of "
          f"{num_replicas}")
    return global_batch_size // num_replicas, global_batch_size
  if batch_size_per_replica <= 0:
    raise ValueError(f"train.batch_size_per_replica={batch_size_per_replica} "
                     "must be > 0")
  return batch_size_per_replica, batch_size_per_replica * num_replicas
