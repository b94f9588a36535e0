"""Training in fresh processes: 2 logical CPUs, 2 workers, kill and resume.

Each test runs real binaries or scripts in subprocesses (TensorFlow's devices
and cluster must be set before it starts), on the fake videos with a
1/32-width network.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from l3_tf.training import workdir as workdir_lib
from tests import training_processes as procs


def test_mirrored_two_cpus_equals_one_device():
  """One step on 2 replicas x 4 pairs = one step on 1 device x 8 pairs."""
  done = subprocess.run(
      [sys.executable, os.path.join(procs.TESTS, "mirrored_equivalence.py")],
      env=procs.env(), capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  results = [json.loads(l) for l in done.stdout.splitlines() if l.startswith("{")]
  assert [r["optimizer"] for r in results] == ["sgd", "adam"]
  for r in results:
    procs.assert_same_step(r)


def test_binary_names_bad_configuration(tmp_path, fake_videos_dir):
  """Fails before any work; the library tests cover the other problems."""
  missing = subprocess.run(
      procs.train_command(tmp_path, fake_videos_dir,
                     "data.dataset=not_built_videos"),
      env=procs.env(), capture_output=True, text=True, timeout=120)
  assert missing.returncode != 0
  assert "'not_built_videos' is not prepared" in missing.stderr
  assert not os.path.exists(workdir_lib.config_path(str(tmp_path)))



@pytest.mark.slow
def test_two_workers_train_to_the_end(tmp_path, fake_videos_dir):
  workdir = str(tmp_path / "run")
  cluster = {"worker": [f"localhost:{procs.free_port()}",
                        f"localhost:{procs.free_port()}"]}
  processes = []
  for index in range(2):
    tf_config = json.dumps({"cluster": cluster,
                            "task": {"type": "worker", "index": index}})
    processes.append(subprocess.Popen(
        procs.train_command(workdir, fake_videos_dir, "train.num_steps=3"),
        env=procs.env(TF_CONFIG=tf_config), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True))
  outputs = []
  try:
    for process in processes:
      outputs.append(process.communicate(timeout=400))
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
  for process, (stdout, stderr) in zip(processes, outputs):
    assert process.returncode == 0, stderr[-3000:]
    assert "MultiWorkerMirroredStrategy" in stderr
  results = [procs.result(stdout) for stdout, _ in outputs]
  for result in results:
    assert result["step"] == 3
  # Synchronous: both workers saw the same all-reduced loss.
  assert (results[0]["last_train_metrics"]["loss"]
          == results[1]["last_train_metrics"]["loss"])
  assert results[0]["eval"]["num_pairs"] == 16 and results[1]["eval"] is None
  assert workdir_lib.latest_checkpoint(workdir).endswith("ckpt-3")
  # 2 workers x 1 replica x 4 pairs.
  assert "2 replica(s) x 4 = 8 pairs per step" in outputs[0][1]




@pytest.mark.slow
def test_sigterm_and_sigkill_then_resume(tmp_path, fake_videos_dir):
  workdir = str(tmp_path / "run")
  command = procs.train_command(workdir, fake_videos_dir, "train.num_steps=60",
                           "train.checkpoint_every_steps=5",
                           "train.log_every_steps=5")
  # 1. SIGTERM after the first checkpoint: a checkpoint of the step reached,
  # exit status 143.
  process = subprocess.Popen(command, env=procs.env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
  procs.wait_for_checkpoint(workdir, process)
  process.send_signal(signal.SIGTERM)
  _, stderr = process.communicate(timeout=120)
  assert process.returncode == 143, stderr[-3000:]
  assert "interrupted by SIGTERM" in stderr
  stopped_at = procs.step_of(workdir_lib.latest_checkpoint(workdir))
  assert 5 <= stopped_at < 60
  assert f"interrupted by SIGTERM at step {stopped_at}" in stderr

  # 2. SIGKILL (no chance to save) once a newer periodic checkpoint exists.
  process = subprocess.Popen(command, env=procs.env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 300
  while procs.step_of(workdir_lib.latest_checkpoint(workdir)) == stopped_at:
    assert process.poll() is None and time.time() < deadline
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  _, stderr = process.communicate(timeout=60)
  assert process.returncode == -signal.SIGKILL
  assert f"resumed from {workdir_lib.checkpoint_dir(workdir)}/ckpt-{stopped_at}" in stderr
  killed_at = procs.step_of(workdir_lib.latest_checkpoint(workdir))
  assert stopped_at < killed_at < 60

  # 3. The same command again: resumes from that step and finishes.
  done = subprocess.run(command, env=procs.env(), capture_output=True, text=True,
                        timeout=400)
  assert done.returncode == 0, done.stderr[-3000:]
  result = procs.result(done.stdout)
  assert result["start_step"] == killed_at and result["step"] == 60
  with open(os.path.join(workdir, "eval_test.json")) as f:
    assert json.load(f)["step"] == 60
