"""Training binaries and scripts in fresh processes: environment, commands, results.

Shared by the tests that start trainers, replicas and tf.data service workers
in subprocesses (TensorFlow's devices and cluster must be set before it starts).
"""

import json
import os
import socket
import sys
import time

from l3_tf.training import workdir as workdir_lib
from tests import fake_videos
from tests import testing

REPO = str(testing.REPO_ROOT)
TESTS = os.path.join(REPO, "tests")


def env(**extra):
  variables = dict(os.environ)
  variables["PYTHONPATH"] = os.pathsep.join([REPO, variables.get("PYTHONPATH", "")])
  variables["TF_CPP_MIN_LOG_LEVEL"] = "3"
  variables.pop("TF_CONFIG", None)
  variables.update(extra)
  return variables


def train_command(workdir, data_dir, *overrides):
  sets = [f"data.dataset={fake_videos.NAME}", f"data.data_dir={data_dir}",
          "train.summary_images_every_steps=0", *overrides]
  return ([sys.executable, "-m", "experiments.train_avc", "--config=test",
           f"--workdir={workdir}"] + [f"--set={s}" for s in sets])


def result(stdout: str) -> dict:
  lines = [l for l in stdout.splitlines() if l.startswith("TRAIN_RESULT ")]
  assert lines, stdout[-3000:]
  return json.loads(lines[-1][len("TRAIN_RESULT "):])


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def wait_for_checkpoint(workdir, process, deadline_seconds=300):
  deadline = time.time() + deadline_seconds
  while time.time() < deadline:
    latest = workdir_lib.latest_checkpoint(workdir)
    if latest is not None:
      return latest
    assert process.poll() is None, process.communicate()[1][-3000:]
    time.sleep(0.05)
  raise AssertionError("no checkpoint appeared")


def step_of(checkpoint: str) -> int:
  return int(checkpoint.rsplit("-", 1)[1])


def assert_same_step(r: dict) -> None:
  """A result line of tests/mirrored_equivalence.py: the two runs of one
  step agree within the float round-off bound of a step
  (`compiled_check.compiled_step_bound`, relative), where a bound exists:
  SGD's update is the gradient itself, so the weights' distance is within
  bound x the change; Adam's first step is lr * g / (|g| + eps) per
  weight, which turns round-off in a near-zero gradient into up to a whole
  step (no bound), so for Adam the gradient it received (its first moment
  (1 - beta_1) g) is compared instead. The losses are computed before the
  update, from the same weights. (Before: weights within 1e-5 of the
  change + 1e-7, losses 1e-5: one machine's measured errors.)"""
  bound = r["step_bound"]
  assert r["replicas"] == 2 and r["steps"] == [1, 1]
  assert r["weight_change"] > 1e-3, r  # the step did something
  if r["optimizer"] == "sgd":
    assert r["weight_distance"] <= bound * r["weight_change"], r
  else:
    assert r["moment_norm"] > 0, r
    assert r["moment_distance"] <= bound * r["moment_norm"], r
  for key in ("loss", "regularization"):
    single, mirrored = r[f"{key}_single"], r[f"{key}_mirrored"]
    assert abs(single - mirrored) <= bound * abs(single), (key, r)
