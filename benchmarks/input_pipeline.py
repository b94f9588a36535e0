"""Input-pipeline throughput per core, and bf16 vs fp32 training-step speed.

  python benchmarks/input_pipeline.py [--seconds=20] [--data_dir=runs/bench]

1. Builds `video_folder` over the real clips of ../shared/data/av_clips (all
   into one split; reused when already built), or the synthetic set when the
   clips are absent (said in the output).
2. Runs the full training pipeline of the `paper` config (TFRecords ->
   sample pairs -> decode one JPEG per pair -> crop / flip / jitter -> gain
   -> log-spectrogram -> batches of 16) in a child process pinned to 1 core,
   then to 2 cores, and prints pairs/s and pairs/s per core.
3. Times one training step of the full network (batch 16, the real
   `l3_tf.training.step.make_train_step`) in float32 and in mixed_bfloat16, each in
   its own process, and prints the speed ratio.

With --compare_commit=<commit>, step 2 instead runs the pipeline of that
commit (its l3_tf/ and experiments/, from `git archive`) and of this tree
alternately (old, new, old, new, ...) in 1-core children over the same
TFRecords, and prints both medians and their ratio: a before/after figure
from one run on a loaded machine.

Every figure comes with the machine's load average at the time: other
processes on the same cores lower it.

With --service_workers=N, instead: starts a tf.data service dispatcher and
N workers on this machine (each its own process) and reads the same
training pipeline through them (`data.service_address`), for 1 .. N
workers, beside the local pipeline measured in the same run (alternating,
local first). On one small machine the workers share the same cores as
the reader, so the figure shows the service's overhead, not a speed-up;
the speed-up comes from workers on other machines.
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import json
import os
import subprocess
import sys
import time

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/ (the benchmark videos)


_SECONDS = flags.DEFINE_float("seconds", 20.0, "timed seconds per measurement")
_DATA_DIR = flags.DEFINE_string("data_dir", "runs/bench_data",
                                "where the benchmark dataset is built")
_STEPS = flags.DEFINE_integer("steps", 3, "timed training steps per dtype")
_SKIP_MODEL = flags.DEFINE_bool("skip_model", False, "skip the bf16/fp32 step")
_ROLE = flags.DEFINE_enum("role", "main", ["main", "pipeline", "step"],
                          "internal: what a child process measures")
_DATASET = flags.DEFINE_string("dataset", None, "internal: dataset name")
_DTYPE = flags.DEFINE_string("dtype", "float32", "internal: step dtype")
_COMPARE = flags.DEFINE_string(
    "compare_commit", None, "also time this commit's pipeline, interleaved "
    "with this tree's, on 1 core")
_AB_REPEATS = flags.DEFINE_integer("ab_repeats", 3,
                                   "--compare_commit: runs of each")
_SERVICE_WORKERS = flags.DEFINE_integer(
    "service_workers", 0, "if > 0: pairs/s through a local tf.data service "
    "with 1 .. this many workers, against the local pipeline")
_SERVICE = flags.DEFINE_string("service", None, "internal: dispatcher address")


def build_dataset(data_dir: str) -> tuple[str, str]:
  """(TFDS name, description) of the benchmark videos, built if needed."""
  from tests import testing

  clips = testing.SHARED_DATA / "av_clips"
  if clips.is_dir():
    builder = testing.build_video_folder(data_dir, clips)
    return ("video_folder/all_train",
            f"{builder.info.splits['train'].num_examples} real clips of "
            f"{clips} (first 10 s, 4 fps frames)")
  from data_prep import synthetic_av
  builder = synthetic_av.build(data_dir, config="tiny")
  return ("synthetic_av/tiny", f"SYNTHETIC (real clips absent at {clips}): "
          f"{builder.info.splits['train'].num_examples} generated videos")


def _library_module(name: str):
  """`l3_tf.<subpackage>.<name>`, or `l3_tf.<name>` in a --compare_commit tree
  older than the subpackages (issue 23 moved the flat modules)."""
  import importlib
  for subpackage in ("data.", "training.", ""):
    try:
      return importlib.import_module(f"l3_tf.{subpackage}{name}")
    except ModuleNotFoundError:
      continue
  raise ModuleNotFoundError(f"no l3_tf module {name!r} in this tree")


def _config(dataset: str, data_dir: str):
  from experiments import configs
  config_lib = _library_module("config")
  return config_lib.apply_overrides(configs.get_config("paper"), [
      f"data.dataset={dataset}", f"data.data_dir={data_dir}",
      "data.shuffle_videos=64"])


def measure_pipeline(dataset: str, data_dir: str, seconds: float,
                     service: str | None = None) -> dict:
  """Pairs/s of the training pipeline on the cores this process may use
  (or read through the tf.data service at `service`)."""
  import tensorflow as tf
  input_pipeline = _library_module("input_pipeline")

  cores = len(os.sched_getaffinity(0))
  config = _config(dataset, data_dir)
  batch = config.train.batch_size_per_replica
  options = tf.data.Options()
  options.threading.private_threadpool_size = cores
  # An older commit's pipeline (--compare_commit) may predate the service.
  service_kwargs = {} if service is None else {"service_address": service}
  dataset_ = input_pipeline.train_dataset(
      config, batch, seed=0, **service_kwargs).with_options(options)
  iterator = iter(dataset_)
  for _ in range(10):  # warm-up: shuffle buffer, autotuning
    next(iterator)
  load = os.getloadavg()[0]
  start, pairs = time.perf_counter(), 0
  cpu_start = time.process_time()
  while time.perf_counter() - start < seconds:
    features, _ = next(iterator)
    pairs += int(features["image"].shape[0])
  elapsed = time.perf_counter() - start
  cpu = time.process_time() - cpu_start
  # Pairs per CPU-second of this process: what a core that it had to itself
  # would deliver; on a loaded machine the wall-clock rate is lower.
  return {"cores": cores, "pairs_per_second": pairs / elapsed,
          "pairs_per_second_per_core": pairs / elapsed / cores,
          "pairs_per_cpu_second": pairs / cpu,
          "load_average_before": load, "load_average_after": os.getloadavg()[0]}


def measure_step(dtype: str, steps: int) -> dict:
  """Median seconds of one full-model training step at batch 16."""
  import keras
  import numpy as np
  import tensorflow as tf
  from l3_tf.model import networks as model_lib
  from l3_tf.training import step as step_lib

  keras.mixed_precision.set_global_policy(dtype)
  strategy = tf.distribute.get_strategy()
  model = model_lib.avc_network(model_lib.ModelConfig())
  optimizer = keras.optimizers.Adam(1e-4)
  optimizer.build(model.trainable_variables)
  step = tf.Variable(0, dtype=tf.int64)
  train_step = step_lib.make_train_step(model, optimizer, strategy, 16, step)
  features = {"image": tf.random.uniform([16, 224, 224, 3], -1, 1),
              "spectrogram": tf.random.normal([16, 257, 199, 1])}
  labels = tf.constant(np.arange(16) % 2, tf.int32)
  for _ in range(2):
    train_step(features, labels)["loss"].numpy()
  load = os.getloadavg()[0]
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    train_step(features, labels)["loss"].numpy()
    times.append(time.perf_counter() - start)
  return {"dtype": dtype, "seconds_per_step": float(np.median(times)),
          "load_average_before": load, "load_average_after": os.getloadavg()[0]}


def _child(args: list[str], cores: set[int] | None = None,
           root: str | None = None) -> dict:
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  env["PYTHONPATH"] = os.pathsep.join(
      [root or os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
       env.get("PYTHONPATH", "")])
  done = subprocess.run(
      [sys.executable, os.path.abspath(__file__)] + args, env=env,
      capture_output=True, text=True,
      preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None)
  lines = [l for l in done.stdout.splitlines() if l.startswith("{")]
  if done.returncode or not lines:
    raise RuntimeError(f"benchmark child {args} failed:\n{done.stderr[-3000:]}")
  return json.loads(lines[-1])


def compare_pipelines(commit: str, dataset: str, data_dir: str,
                      seconds: float, repeats: int) -> dict:
  """1-core pairs/s of `commit`'s pipeline and this tree's, interleaved."""
  import statistics
  import tempfile

  here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  core = {sorted(os.sched_getaffinity(0))[0]}
  args = ["--role=pipeline", f"--dataset={dataset}", f"--data_dir={data_dir}",
          f"--seconds={seconds}"]
  with tempfile.TemporaryDirectory() as old_root:
    archive = subprocess.run(
        ["git", "-C", here, "archive", commit, "l3_tf", "experiments"],
        capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", old_root], input=archive, check=True)
    rates = {"before": [], "after": []}
    cpu_rates = {"before": [], "after": []}
    loads = []
    for _ in range(repeats):
      for name, root in (("before", old_root), ("after", here)):
        result = _child(args, core, root)
        print(json.dumps({name: result}))
        rates[name].append(result["pairs_per_second"])
        cpu_rates[name].append(result["pairs_per_cpu_second"])
        loads.append(round(result["load_average_before"], 2))
  before = statistics.median(rates["before"])
  after = statistics.median(rates["after"])
  return {"commit": commit,
          "before_pairs_per_second_1_core": [round(r, 1)
                                             for r in rates["before"]],
          "after_pairs_per_second_1_core": [round(r, 1)
                                            for r in rates["after"]],
          "median_before": round(before, 1), "median_after": round(after, 1),
          "ratio": round(after / before, 2),
          "before_pairs_per_cpu_second": [round(r, 1)
                                          for r in cpu_rates["before"]],
          "after_pairs_per_cpu_second": [round(r, 1)
                                         for r in cpu_rates["after"]],
          "cpu_ratio": round(statistics.median(cpu_rates["after"])
                             / statistics.median(cpu_rates["before"]), 2),
          "load_averages": loads}
def _start_server(*args) -> tuple[subprocess.Popen, str]:
  """experiments/data_service.py in a child; (process, its address)."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
  process = subprocess.Popen(
      [sys.executable, "-m", "experiments.data_service", *args], cwd=root,
      env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
  line = process.stdout.readline()
  if not line.startswith("DATA_SERVICE "):
    process.kill()
    raise RuntimeError(f"data service {args} did not start: {line!r}")
  return process, line.split()[2]


def compare_service(dataset: str, data_dir: str, seconds: float,
                    max_workers: int) -> dict:
  """Pairs/s locally and through a local tf.data service of 1..N workers."""
  dispatcher, address = _start_server("--role=dispatcher")
  servers = [dispatcher]
  summary = {"cores": len(os.sched_getaffinity(0)), "seconds": seconds}
  common = ["--role=pipeline", f"--dataset={dataset}",
            f"--data_dir={data_dir}", f"--seconds={seconds}"]
  try:
    for workers in range(1, max_workers + 1):
      servers.append(_start_server("--role=worker",
                                   f"--dispatcher_address={address}")[0])
      local = _child(common)
      print(json.dumps({"source": "local", **local}))
      served = _child(common + [f"--service={address}"])
      print(json.dumps({"source": f"service, {workers} worker(s)", **served}))
      summary[f"pairs_per_second_local_{workers}"] = round(
          local["pairs_per_second"], 1)
      summary[f"pairs_per_second_service_{workers}_workers"] = round(
          served["pairs_per_second"], 1)
      summary[f"service_over_local_{workers}_workers"] = round(
          served["pairs_per_second"] / local["pairs_per_second"], 2)
      summary[f"load_average_{workers}_workers"] = round(
          served["load_average_before"], 2)
  finally:
    for server in reversed(servers):
      server.terminate()
      server.wait(timeout=60)
  return summary


def main(argv):
  del argv
  data_dir = os.path.abspath(_DATA_DIR.value)
  if _ROLE.value == "pipeline":
    print(json.dumps(measure_pipeline(_DATASET.value, data_dir,
                                      _SECONDS.value, _SERVICE.value)))
    return
  if _ROLE.value == "step":
    print(json.dumps(measure_step(_DTYPE.value, _STEPS.value)))
    return

  dataset, description = build_dataset(data_dir)
  print(f"data: {description}")
  if _COMPARE.value:
    comparison = compare_pipelines(_COMPARE.value, dataset, data_dir,
                                   _SECONDS.value, _AB_REPEATS.value)
    print("BENCHMARK " + json.dumps({"data": description, **comparison}))
  if _SERVICE_WORKERS.value > 0:
    summary = compare_service(dataset, data_dir, _SECONDS.value,
                              _SERVICE_WORKERS.value)
    print("BENCHMARK " + json.dumps({"data": description, **summary}))
    return
  available = sorted(os.sched_getaffinity(0))
  summary = {"data": description}
  for count in (1, 2):
    if count > len(available):
      continue
    result = _child(["--role=pipeline", f"--dataset={dataset}",
                     f"--data_dir={data_dir}", f"--seconds={_SECONDS.value}"],
                    set(available[:count]))
    print(json.dumps(result))
    summary[f"pairs_per_second_{count}_core"] = round(
        result["pairs_per_second"], 1)
    summary[f"pairs_per_second_per_core_{count}_core"] = round(
        result["pairs_per_second_per_core"], 1)
    summary[f"load_average_{count}_core"] = round(
        result["load_average_before"], 2)
  if not _SKIP_MODEL.value:
    steps = {}
    for dtype in ("float32", "mixed_bfloat16"):
      steps[dtype] = _child(["--role=step", f"--dtype={dtype}",
                             f"--steps={_STEPS.value}"])
      print(json.dumps(steps[dtype]))
    summary["full_model_step_seconds_fp32"] = round(
        steps["float32"]["seconds_per_step"], 2)
    summary["full_model_step_seconds_bf16"] = round(
        steps["mixed_bfloat16"]["seconds_per_step"], 2)
    summary["bf16_speedup_over_fp32"] = round(
        steps["float32"]["seconds_per_step"]
        / steps["mixed_bfloat16"]["seconds_per_step"], 2)
  print("BENCHMARK " + json.dumps(summary))


if __name__ == "__main__":
  app.run(main)
