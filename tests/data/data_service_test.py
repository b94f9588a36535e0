"""The training pipeline through a tf.data service on loopback.

The fixture starts a dispatcher and 2 workers with the real binary
(experiments/data_service.py, one process each) and stops them with SIGTERM,
checking they exit cleanly.
"""

import dataclasses
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from l3_tf.data import data_service
from l3_tf.data import input_pipeline
from l3_tf.training import plan as plan_lib
from l3_tf.training import train
from tests import pair_checks
from tests import training_processes as dist


def _popen(*args):
  return subprocess.Popen(
      [sys.executable, "-m", "experiments.data_service", *args],
      env=dist.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True, cwd=dist.REPO)


def _address(process):
  line = process.stdout.readline()  # "DATA_SERVICE <role> <address>"
  if not line.startswith("DATA_SERVICE "):
    process.kill()
    raise AssertionError(f"no DATA_SERVICE line: {line!r} "
                         f"{process.communicate()[1][-3000:]}")
  return line.split()[2]


@pytest.fixture(scope="module")
def service():
  """The dispatcher's grpc address, with 2 workers registered."""
  dispatcher = _popen("--role=dispatcher")
  processes = [dispatcher]
  try:
    address = _address(dispatcher)
    processes += [_popen("--role=worker", f"--dispatcher_address={address}")
                  for _ in range(2)]
    for worker in processes[1:]:  # started together, serving once they print
      _address(worker)
    yield address
  finally:
    for process in reversed(processes):
      process.send_signal(signal.SIGTERM)
    for process in processes:
      _, stderr = process.communicate(timeout=60)
      assert process.returncode == 0, stderr[-3000:]
      assert "SIGTERM received, stopping" in stderr


def test_address_is_checked():
  assert data_service.service_url("localhost:5050") == "grpc://localhost:5050"
  assert data_service.split_address("grpc://h:1") == ("h", 1)
  for bad in ("localhost", "grpc://localhost:", "http://h:80", "h:70000"):
    with pytest.raises(ValueError, match=repr(bad)):
      data_service.split_address(bad)


def test_every_copy_draws_its_own_seed():
  """Two iterations of the same graph (as two workers would run it) draw
  different seeds, also under a global seed of 0 (as training sets), and
  seed a shuffle with them."""
  tf.random.set_seed(0)
  try:
    seeds = data_service.per_worker_seed(
        7, lambda s: tf.data.Dataset.range(100).shuffle(100, seed=s).batch(100))
    first, second = (next(iter(seeds)).numpy().tolist() for _ in range(2))
  finally:
    tf.random.set_seed(None)
  assert sorted(first) == sorted(second) == list(range(100))
  assert first != second


@pytest.mark.slow
def test_pairs_read_through_the_service(service, fake_config):
  """Balanced batches, positives inside their window (the sampler's
  contract), and no batch twice: were the 2 workers seeded alike, each
  batch would arrive once from each of them."""
  dataset = input_pipeline.train_dataset(fake_config, 8, seed=0,
                                         with_metadata=True,
                                         service_address=service)
  batches = pair_checks.collect(dataset, 12)
  assert pair_checks.check_pair_properties(batches) == 96
  keys = [tuple(zip(m["frame_video_id"], m["frame_index"],
                    m["audio_start_sample"], np.round(m["gain"], 6)))
          for _, _, m in batches]
  assert len(set(keys)) == len(keys)
  # Not the local pipeline's stream either: the workers drew their own seeds.
  local = pair_checks.collect(input_pipeline.train_dataset(
      fake_config, 8, seed=0, with_metadata=True), 12)
  local_keys = {tuple(zip(m["frame_video_id"], m["frame_index"],
                          m["audio_start_sample"], np.round(m["gain"], 6)))
                for _, _, m in local}
  assert not local_keys & set(keys)


@pytest.mark.slow
def test_training_through_the_service(service, fake_config, tmp_path):
  config = dataclasses.replace(
      fake_config, data=dataclasses.replace(fake_config.data,
                                            service_address=service),
      train=dataclasses.replace(fake_config.train,
                                summary_images_every_steps=0))
  plan = plan_lib.describe_plan(config, tf.distribute.get_strategy())
  assert f"tf.data service at {service}" in plan
  result = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert result["step"] == 2
  assert np.isfinite(result["last_train_metrics"]["loss"])
  assert result["eval"]["num_pairs"] == 16
