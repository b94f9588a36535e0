"""Records of measured runs: the small JSON files the report is built from.

Each experiment binary can write one record (`--record=results/NAME.json`)
beside its full results. A record says what was measured and at which
scale, so that a CPU-scale figure is never mistaken for the paper's:

  experiment   "avc" | "sound_classification" | "linear_probe" | "retrieval"
  dataset      e.g. "esc10", "synthetic_av", "kinetics_sounds"
  method       "L3-Net", "Ours random", "Supervised direct combination",
               "Supervised pretraining"
  metric       "accuracy", "top1" or "recall@1" (retrieval: sound-to-image);
               value in [0, 1]
  details      per-fold accuracies, std, top-5, ... (experiment-specific)
  scale        {"data": which data, full or subset; "network": full or
               narrowed widths; "training": the weights' training}
  environment  hardware, load average, date, library versions
  command      the command that produced it
  run_seconds  wall time of the run

Records live in `results/` at the repository root (committed: they are the
project's measured figures); `experiments.report` renders them.
"""

import datetime
import glob
import json
import os
import platform
import shlex
import sys
from typing import Any

EXPERIMENTS = ("avc", "sound_classification", "linear_probe", "retrieval")
REQUIRED = ("experiment", "dataset", "method", "metric", "value", "scale",
            "environment", "command")
SCALE_KEYS = ("data", "network", "training")


def _cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
  """Where and when: hardware, load, date, versions."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  gpus = tf.config.list_physical_devices("GPU")
  return {
      "hardware": (f"{_cpu_model()}, {os.cpu_count()} CPU cores, "
                   f"{len(gpus)} GPU(s)"),
      "load_average_1_5_15_min_at_start": _load_average(),
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds"),
      "python": platform.python_version(),
      "tensorflow": tf.__version__,
  }


def _load_average() -> list[float] | None:
  try:
    return [round(x, 2) for x in os.getloadavg()]
  except OSError:
    return None


def note_end(env: dict[str, Any]) -> dict[str, Any]:
  """Adds the load average at the end of the run to `env` (and returns it):
  other processes on the machine slow a run down."""
  env["load_average_1_5_15_min_at_end"] = _load_average()
  return env


def command(module: str, argv: list[str] | None = None) -> str:
  """`python -m <module> <args>` as typed (quoted for a shell)."""
  argv = sys.argv if argv is None else argv
  return shlex.join(["python", "-m", module] + list(argv[1:]))


def network_scale(model_config) -> str:
  """"full (64, 128, 256, 512)" or "narrowed x0.125 (8, 16, 32, 64)"."""
  widths = tuple(model_config.widths)
  if not model_config.is_narrowed:
    return f"full {widths}"
  return f"narrowed x{model_config.width_multiplier:g} {widths}"


def training_scale(config, step: int | None) -> str:
  """How the weights were trained, from their config and step."""
  if step is None:
    return "untrained (random initialisation)"
  train = config.train
  batch = (train.global_batch_size if train.global_batch_size
           else f"{train.batch_size_per_replica}/replica")
  return (f"AVC on {config.data.dataset} ({config.data.train_split} split), "
          f"{step} steps, batch {batch}, config {config.name}")


def make_record(*, experiment: str, dataset: str, method: str, metric: str,
                value: float, scale: dict[str, str], command_line: str,
                details: dict[str, Any] | None = None,
                run_seconds: float | None = None,
                env: dict[str, Any] | None = None) -> dict[str, Any]:
  """A validated record (see the module docstring)."""
  record = {
      "experiment": experiment, "dataset": dataset, "method": method,
      "metric": metric, "value": float(value), "scale": dict(scale),
      "details": details or {}, "command": command_line,
      "run_seconds": run_seconds,
      "environment": env if env is not None else environment(),
  }
  check_record(record, "record")
  return record


def check_record(record: dict[str, Any], where: str) -> None:
  """Raises ValueError naming `where` and the problem."""
  missing = [k for k in REQUIRED if k not in record]
  if missing:
    raise ValueError(f"{where}: missing field(s) {missing}; a record needs "
                     f"{list(REQUIRED)}")
  if record["experiment"] not in EXPERIMENTS:
    raise ValueError(f"{where}: experiment={record['experiment']!r}, "
                     f"expected one of {list(EXPERIMENTS)}")
  if not 0.0 <= float(record["value"]) <= 1.0:
    raise ValueError(f"{where}: value={record['value']} is not a fraction "
                     "in [0, 1]")
  missing = [k for k in SCALE_KEYS if k not in record["scale"]]
  if missing:
    raise ValueError(f"{where}: scale lacks {missing}; it needs "
                     f"{list(SCALE_KEYS)}")


def write_record(record: dict[str, Any], path: str) -> str:
  check_record(record, path)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    json.dump(record, f, indent=2, sort_keys=True)
    f.write("\n")
  return path


def read_records(directory: str) -> list[dict[str, Any]]:
  """Every `*.json` record of a directory, sorted by file name; each gets
  its file name as "source".

  Raises:
    ValueError: a file is not valid JSON or not a valid record.
  """
  records = []
  for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
    try:
      with open(path) as f:
        record = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f"{path}: not valid JSON ({e})") from None
    check_record(record, path)
    record["source"] = os.path.basename(path)
    records.append(record)
  return records
