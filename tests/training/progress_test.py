"""The training progress bar and the binaries' quiet TensorFlow start-up."""

import ast
import io
import os
import subprocess
import sys

import pytest

from experiments import quiet_logs
from l3_tf.training import progress
from tests import testing

ROOT = str(testing.REPO_ROOT)


def test_progress_bar_shows_steps_pairs_per_second_and_eta():
  out = io.StringIO()
  with progress.StepProgress(10, 2, pairs_per_step=32, enabled=True,
                             file=out) as bar:
    bar.update(3, 0.5, loss=0.69)  # 32 pairs in 0.5 s
    bar.update(5, 1.0)  # 64 pairs in 1 s: smoothed 64.0
  text = out.getvalue()
  assert "5/10" in text and "64.0 pairs/s" in text and "loss 0.690" in text
  assert "<" in text  # elapsed<remaining


def test_progress_bar_disabled_and_checked():
  out = io.StringIO()
  bar = progress.StepProgress(10, 0, 32, enabled=False, file=out)
  bar.update(1, 0.1)
  bar.close()
  assert bar.disabled and out.getvalue() == ""
  with pytest.raises(ValueError, match="pairs_per_step=0"):
    progress.StepProgress(10, 0, 0, enabled=False)


@pytest.mark.parametrize("argv,verbose", [
    (["prog"], False), (["prog", "--verbose"], True),
    (["prog", "--verbose", "--noverbose"], False),
    (["prog", "--", "--verbose"], False), (["prog", "--verbose=true"], True)])
def test_verbose_read_before_flags(argv, verbose):
  assert quiet_logs.verbose_requested(argv) == verbose


def test_user_level_and_verbose_win():
  env = {"TF_CPP_MIN_LOG_LEVEL": "0"}
  assert not quiet_logs.quiet_tensorflow_start_up(["prog"], env)
  assert env == {"TF_CPP_MIN_LOG_LEVEL": "0"}
  env = {}
  assert not quiet_logs.quiet_tensorflow_start_up(["prog", "--verbose"], env)
  assert env == {}


def test_filter_keeps_other_lines():
  text = ("2026 E cuda_dnn.cc] Unable to register cuDNN factory: x\n"
          "I cudart_stub.cc] Could not find cuda drivers on your machine\n"
          "a real problem\n")
  assert quiet_logs.filter_start_up_noise(text) == "a real problem\n"


def _child(*args):
  """Runs the first lines of a binary (quiet_logs, then TensorFlow) in a
  fresh process without the user's TF_CPP_MIN_LOG_LEVEL."""
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  env["PYTHONPATH"] = ROOT
  code = ("import os, sys\n"
          "from experiments import quiet_logs\n"
          "print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'))\n"
          "if 'tensorflow' in sys.modules:\n"
          "  import tensorflow as tf\n"
          "  tf.constant(1.0) + 1.0\n"
          "  print('a line of its own', file=sys.stderr)\n")
  return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=300)


def test_tensorflow_start_up_is_quiet_in_a_binary():
  quiet = _child()
  assert quiet.returncode == 0, quiet.stderr
  assert quiet.stdout.strip() == quiet_logs.QUIET_LEVEL
  assert not quiet_logs.START_UP_NOISE.search(quiet.stderr), quiet.stderr
  assert "a line of its own" in quiet.stderr  # stderr is given back


def test_verbose_leaves_tensorflow_alone():
  loud = _child("--verbose")
  assert loud.returncode == 0, loud.stderr
  assert loud.stdout.strip() == "None"  # TF's own default level applies


def _binaries() -> list[str]:
  """Every absl binary of experiments/ and benchmarks/ (a script that calls
  app.run)."""
  found = []
  for folder in ("experiments", "benchmarks"):
    for name in sorted(os.listdir(os.path.join(ROOT, folder))):
      if not name.endswith(".py"):
        continue
      with open(os.path.join(ROOT, folder, name)) as f:
        text = f.read()
      if "app.run(" in text and '__name__ == "__main__"' in text:
        found.append(os.path.join(folder, name))
  return found


def _first_import(path: str) -> str:
  """The module named by the first top-level import statement of `path`."""
  with open(os.path.join(ROOT, path)) as f:
    tree = ast.parse(f.read())
  for node in tree.body:
    if isinstance(node, ast.ImportFrom):
      return f"{node.module}.{node.names[0].name}"
    if isinstance(node, ast.Import):
      return node.names[0].name
  return ""


def test_every_binary_imports_quiet_logs_first():
  binaries = _binaries()
  assert "experiments/demo.py" in binaries
  assert "benchmarks/model_step.py" in binaries
  first = {path: _first_import(path) for path in binaries}
  late = {path: name for path, name in first.items()
          if name != "experiments.quiet_logs"}
  assert not late, f"binaries whose first import is not quiet_logs: {late}"
