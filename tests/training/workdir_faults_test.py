"""One writer per workdir (a local folder or an object store), and
checkpoints that survive a crash (issues 14, 26)."""

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings

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


def _object_store_lock(workdir, **kwargs):
  """A lock through the URL code path (file://: no server needed; the S3
  test below runs two trainers on moto), with short periods."""
  periods = {"heartbeat_seconds": 0.2, "stale_seconds": 2.0,
             "settle_seconds": 0.3}
  return workdir_lib.WorkdirLock(workdir, **{**periods, **kwargs})


def test_an_object_store_lock_refuses_a_second_writer_then_frees(tmp_path):
  workdir = f"file://{tmp_path}/run"
  lock = _object_store_lock(workdir)
  with tf.io.gfile.GFile(lock.path) as f:
    first = json.load(f)
  assert first["pid"] == os.getpid() and first["token"] == lock.owner["token"]
  time.sleep(0.7)  # a few heartbeats: the lock stays fresh, beyond 2 s too
  with tf.io.gfile.GFile(lock.path) as f:
    assert json.load(f)["heartbeat"] > first["heartbeat"]
  time.sleep(2.0)
  with pytest.raises(workdir_lib.WorkdirLocked,
                     match=rf"pid {os.getpid()} on host .* last heartbeat 0 s "
                     r"ago\): one training process per workdir.* older than "
                     r"2 s is taken over"):
    _object_store_lock(workdir)
  lock.release()
  assert not tf.io.gfile.exists(lock.path)
  _object_store_lock(workdir).release()  # free again


def test_an_object_store_lock_without_heartbeat_is_taken_over(tmp_path):
  workdir = f"file://{tmp_path}/run"
  tf.io.gfile.makedirs(workdir)
  with tf.io.gfile.GFile(f"{workdir}/lock", "w") as f:
    f.write(json.dumps({"pid": 99, "host": "elsewhere.example",
                        "started": "t", "token": "x",
                        "heartbeat": time.time() - 10}))
  with pytest.warns(workdir_lib.WorkdirWarning,
                    match=r"stale lock .* of pid 99 on host "
                    r"'elsewhere.example' .*: no heartbeat for more than 2 s"):
    lock = _object_store_lock(workdir)
  with tf.io.gfile.GFile(lock.path) as f:
    assert json.load(f)["token"] == lock.owner["token"]
  lock.release()


def test_an_object_store_lock_of_a_dead_local_trainer_is_taken_at_once(
    tmp_path):
  """A trainer killed on this host (SIGKILL: no release) is resumed
  without waiting for its heartbeat to go stale."""
  workdir = f"file://{tmp_path}/run"
  tf.io.gfile.makedirs(workdir)
  with tf.io.gfile.GFile(f"{workdir}/lock", "w") as f:
    f.write(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(),
                        "started": "t", "token": "x",
                        "heartbeat": time.time()}))
  with pytest.warns(workdir_lib.WorkdirWarning,
                    match=r"stale lock .* which is no longer running"):
    _object_store_lock(workdir).release()


def test_of_two_object_store_lockers_at_once_one_wins(tmp_path):
  """Both read "no lock", both write theirs; the read-back after the settle
  time leaves one holder and one refusal."""
  workdir = f"file://{tmp_path}/run"
  outcomes = []

  def take():
    try:
      outcomes.append(_object_store_lock(workdir, settle_seconds=1.0))
    except workdir_lib.WorkdirLocked as e:
      outcomes.append(e)

  threads = [threading.Thread(target=take) for _ in range(2)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  held = [o for o in outcomes if isinstance(o, workdir_lib.WorkdirLock)]
  refused = [o for o in outcomes if isinstance(o, workdir_lib.WorkdirLocked)]
  assert len(held) == 1 and len(refused) == 1, outcomes
  with tf.io.gfile.GFile(held[0].path) as f:
    assert json.load(f)["token"] == held[0].owner["token"]
  held[0].release()


def test_a_relative_workdir_is_not_a_damaged_one(tmp_path, monkeypatch):
  """Before: `experiments.export --workdir=runs/demo/avc` warned that
  runs/demo/avc/checkpoints/runs/demo/avc/checkpoints/ckpt-200 was damaged
  (the state file's entry joined to the folder twice) and used the same
  checkpoint as "the older" one."""
  monkeypatch.chdir(tmp_path)
  relative = os.path.join("runs", "demo", "avc")
  absolute = str(tmp_path / relative)
  _save_tiny_checkpoints(relative, [100, 200])
  expected = os.path.join(absolute, "checkpoints", "ckpt-200")
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # no WorkdirWarning
    assert workdir_lib.latest_checkpoint(relative) == expected
    assert workdir_lib.latest_checkpoint(absolute) == expected
    assert workdir_lib.restore_avc_model(relative)[2] == 200
    assert workdir_lib.restore_avc_model(absolute)[2] == 200
  # The pass-over of a damaged checkpoint works the same either way.
  for path in tf.io.gfile.glob(expected + ".data-*"):
    with open(path, "r+b") as f:
      f.truncate(8)
  for workdir in (relative, absolute):
    with pytest.warns(workdir_lib.WorkdirWarning,
                      match=rf"checkpoint {expected} is damaged .* using the "
                      r"older .*/runs/demo/avc/checkpoints/ckpt-100$"):
      assert workdir_lib.latest_checkpoint(workdir).endswith("ckpt-100")


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
