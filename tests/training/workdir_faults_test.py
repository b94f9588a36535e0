"""One writer per workdir, and checkpoints that survive a crash (issue 14)."""

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from l3_tf.model import networks as model_lib
from l3_tf.training import train
from l3_tf.training import workdir as workdir_lib
from tests import testing

_ENV = dict(os.environ, PYTHONPATH=str(testing.REPO_ROOT),
            TF_CPP_MIN_LOG_LEVEL="2")


def _dead_pid() -> int:
  process = subprocess.Popen([sys.executable, "-c", "pass"])
  process.wait()
  return process.pid


def test_a_second_trainer_fails_at_once_naming_the_first(fake_config,
                                                         tmp_path):
  workdir = str(tmp_path / "run")
  holder = subprocess.Popen(
      [sys.executable, "-c",
       "import sys, time\n"
       "from l3_tf.training import workdir\n"
       "lock = workdir.WorkdirLock(sys.argv[1])\n"
       "print('locked', flush=True)\n"
       "time.sleep(120)\n", workdir],
      env=_ENV, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    started = time.perf_counter()
    with pytest.raises(workdir_lib.WorkdirLocked,
                       match=rf"pid {holder.pid} on this host"):
      train.train_and_evaluate(fake_config, workdir)
    assert time.perf_counter() - started < 60  # at once, before any step
    assert not os.path.exists(workdir_lib.config_path(workdir))
    assert not os.path.exists(workdir_lib.checkpoint_dir(workdir))
  finally:
    holder.kill()
    holder.wait()


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path):
  workdir = str(tmp_path)
  with open(os.path.join(workdir, workdir_lib.LOCK_FILENAME), "w") as f:
    json.dump({"pid": _dead_pid(), "host": socket.gethostname(),
               "started": "earlier"}, f)
  with pytest.warns(workdir_lib.WorkdirWarning, match="stale lock"):
    lock = workdir_lib.WorkdirLock(workdir)
  with open(lock.path) as f:
    assert json.load(f)["pid"] == os.getpid()
  # Held by this live process now: a second taker is refused.
  with pytest.raises(workdir_lib.WorkdirLocked, match=str(os.getpid())):
    workdir_lib.WorkdirLock(workdir)
  lock.release()
  assert not os.path.exists(lock.path)
  workdir_lib.WorkdirLock(workdir).release()  # free again


def test_a_lock_from_another_host_is_not_taken(tmp_path):
  workdir = str(tmp_path)
  with open(os.path.join(workdir, workdir_lib.LOCK_FILENAME), "w") as f:
    json.dump({"pid": 1234, "host": "elsewhere.example", "started": "t"}, f)
  with pytest.raises(workdir_lib.WorkdirLocked,
                     match="pid 1234 on host 'elsewhere.example'"):
    workdir_lib.WorkdirLock(workdir)


def _save_tiny_checkpoints(workdir, steps):
  config = testing.tiny_config()
  workdir_lib.write_config(workdir, config)
  model = model_lib.avc_network(config.model, config.image, config.audio)
  step = tf.Variable(0, dtype=tf.int64)
  manager = tf.train.CheckpointManager(
      tf.train.Checkpoint(model=model, step=step),
      workdir_lib.checkpoint_dir(workdir), max_to_keep=5)
  for value in steps:
    step.assign(value)
    manager.save(checkpoint_number=value)
  return model


def test_a_partly_written_latest_checkpoint_falls_back(tmp_path):
  """Before: tf.train.latest_checkpoint named ckpt-2 and restoring it failed
  with a DataLossError."""
  workdir = str(tmp_path)
  _save_tiny_checkpoints(workdir, [1, 2])
  directory = workdir_lib.checkpoint_dir(workdir)
  data = os.path.join(directory, "ckpt-2.data-00000-of-00001")
  size = os.path.getsize(data)
  with open(data, "r+b") as f:  # a write that stopped half way
    f.truncate(size // 2)
  with pytest.warns(workdir_lib.WorkdirWarning,
                    match=r"ckpt-2 is damaged .*older .*ckpt-1"):
    assert workdir_lib.latest_checkpoint(workdir) == os.path.join(
        directory, "ckpt-1")
  with pytest.warns(workdir_lib.WorkdirWarning):
    _, _, step = workdir_lib.restore_avc_model(workdir)
  assert step == 1
  # Flipped bytes in the middle (same size) are caught by the checksums.
  data1 = os.path.join(directory, "ckpt-1.data-00000-of-00001")
  with open(data1, "r+b") as f:
    f.seek(os.path.getsize(data1) // 2)
    chunk = f.read(64)
    f.seek(-len(chunk), 1)
    f.write(bytes(b ^ 0xFF for b in chunk))
  with pytest.raises(ValueError, match="no checkpoint in .* restores"):
    workdir_lib.latest_checkpoint(workdir)


_SAVE_FOREVER = """
import sys
import tensorflow as tf
from experiments import configs
from l3_tf.model import networks as model_lib
from l3_tf.training import workdir as workdir_lib
config = configs.get_config("paper")
workdir_lib.write_config(sys.argv[1], config)
model = model_lib.avc_network(config.model, config.image, config.audio)
step = tf.Variable(0, dtype=tf.int64)
manager = tf.train.CheckpointManager(
    tf.train.Checkpoint(model=model, step=step),
    workdir_lib.checkpoint_dir(sys.argv[1]), max_to_keep=2)
while True:
  step.assign_add(1)
  for variable in model.trainable_variables[:3]:
    variable.assign_add(tf.ones_like(variable))
  manager.save(checkpoint_number=int(step.numpy()))
  print(int(step.numpy()), flush=True)
"""


@pytest.mark.slow
def test_killed_during_full_width_saves_latest_restores(tmp_path):
  workdir = str(tmp_path / "run")
  process = subprocess.Popen([sys.executable, "-c", _SAVE_FOREVER, workdir],
                             env=_ENV, stdout=subprocess.PIPE, text=True)
  try:
    saved = [int(process.stdout.readline()) for _ in range(2)]
    assert saved == [1, 2]
    # Kill part-way through the third save (~75 MB with 4.7M parameters...
    # the full network's variables; a save takes ~0.3-1 s here).
    time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
  finally:
    if process.poll() is None:
      process.kill()
  latest = workdir_lib.latest_checkpoint(workdir)
  assert latest is not None
  _, model, step = workdir_lib.restore_avc_model(workdir)
  assert step >= 2
  assert all(np.isfinite(v.numpy()).all() for v in model.weights)
