"""The training library end to end on the fake videos, in this process."""

import dataclasses
import glob
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from l3_tf.data import input_pipeline
from l3_tf.platform import cpu_features
from l3_tf.training import evaluate
from l3_tf.training import plan as plan_lib
from l3_tf.training import schedule as schedule_lib
from l3_tf.training import task
from l3_tf.training import train
from l3_tf.training import workdir as workdir_lib


def _tags(directory):
  tags = set()
  for path in glob.glob(os.path.join(directory, "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      tags.update(value.tag for value in event.summary.value)
  return tags


def test_end_to_end_then_resume(fake_config, tmp_path):
  """Two steps from scratch, then a third after restoring everything."""
  workdir = str(tmp_path / "run")
  result = train.train_and_evaluate(fake_config, workdir)
  assert result["step"] == 2 and result["start_step"] == 0
  assert workdir_lib.read_config(workdir) == fake_config
  assert workdir_lib.latest_checkpoint(workdir).endswith("ckpt-2")
  restored_config, model, step = workdir_lib.restore_avc_model(workdir)
  assert step == 2 and restored_config == fake_config
  # Training ended with the evaluation of experiments.eval_avc.
  with open(evaluate.eval_path(workdir, "test")) as f:
    results = json.load(f)
  assert results == result["eval"]
  assert results["num_pairs"] == 16 and results["num_positives"] == 8
  assert results["step"] == 2 and results["checkpoint"].endswith("ckpt-2")
  assert 0.0 <= results["accuracy"] <= 1.0
  tags = _tags(os.path.join(workdir, "train"))
  assert {"loss", "accuracy", "learning_rate", "pairs_per_second",
          "regularization", "pairs/label_1_corresponds",
          "pairs/label_0_not"} <= tags
  assert {"accuracy", "loss"} <= _tags(os.path.join(workdir, "eval"))

  # Resume: the same workdir with a longer schedule, now in mixed precision
  # (float32 variables: the same checkpoint serves both), and another
  # constant learning rate, which must apply although the optimizer's
  # learning rate is a variable of the checkpoint.
  new_rate = fake_config.train.learning_rate / 4
  longer = dataclasses.replace(fake_config, train=dataclasses.replace(
      fake_config.train, num_steps=3, precision="bfloat16",
      learning_rate=new_rate))
  blocked = cpu_features.bf16_blocked_by_isa_cap()
  if blocked:
    # oneDNN capped below avx512_core on an AVX-512 CPU: bfloat16 would
    # abort inside TensorFlow; refused at the door, then resumed in float32.
    with pytest.raises(ValueError, match=r"train.precision='bfloat16' "
                       r"cannot run here: ONEDNN_MAX_CPU_ISA="):
      train.train_and_evaluate(longer, workdir)
    assert workdir_lib.latest_checkpoint(workdir).endswith("ckpt-2")
    longer = dataclasses.replace(longer, train=dataclasses.replace(
        longer.train, precision="float32"))
  result = train.train_and_evaluate(longer, workdir)
  assert result["start_step"] == 2 and result["step"] == 3
  assert result["last_train_metrics"]["learning_rate"] == pytest.approx(
      new_rate)
  assert keras.mixed_precision.global_policy().name == "float32"  # restored
  reader2 = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints",
                                                  "ckpt-2"))
  reader3 = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints",
                                                  "ckpt-3"))
  key = "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"
  assert reader2.get_tensor(key) == 2 and reader3.get_tensor(key) == 3
  seed_key = "data_seed/.ATTRIBUTES/VARIABLE_VALUE"
  assert reader2.get_tensor(seed_key) == plan_lib.pipeline_seed(0, 0)
  assert reader3.get_tensor(seed_key) == plan_lib.pipeline_seed(0, 2)
  assert plan_lib.pipeline_seed(0, 0) != plan_lib.pipeline_seed(0, 2)

  # A fresh trainer restores every variable, optimizer slots included.
  plan = plan_lib.check_config(longer)
  trainer = train._Trainer(task.avc_task(longer), longer,
                           tf.distribute.get_strategy(), plan, workdir)
  assert trainer.restore() == 3
  assert trainer.learning_rate() == pytest.approx(new_rate)
  # Keras 3 saves the optimizer's variable list as optimizer/_variables/N
  # (N = 0, 1 are the iteration count and learning rate, saved by name).
  slots = {int(name.split("/")[2]): name for name, _ in tf.train.list_variables(
      workdir_lib.latest_checkpoint(workdir))
           if name.startswith("optimizer/_variables/")}
  variables = trainer.optimizer.variables
  assert sorted(slots) == list(range(2, len(variables)))
  for index, name in slots.items():
    np.testing.assert_array_equal(variables[index].numpy(),
                                  reader3.get_tensor(name))
  assert max(np.abs(variables[i].numpy()).max() for i in slots) > 0
  trainer.close()


def test_pair_images_by_label():
  features = {"image": tf.zeros([6, 224, 224, 3]),
              "spectrogram": tf.random.normal([6, 257, 199, 1])}
  images = task.pair_images(features, tf.constant([1, 0, 1, 0, 1, 0]), 2)
  for tag in ("pairs/label_1_corresponds", "pairs/label_0_not"):
    assert images[tag].shape == (2, 224, 224 + 4 + 199, 3)
    assert float(tf.reduce_min(images[tag])) >= 0.0
    assert float(tf.reduce_max(images[tag])) <= 1.0


@pytest.mark.parametrize("overrides, num_replicas, message", [
    ({"train.global_batch_size": 6}, 4,
     "global_batch_size=6 is not divisible by the 4 replicas"),
    ({"train.batch_size_per_replica": 3}, 1, "per replica is 3 .* even"),
    ({"train.global_batch_size": 6}, 2, "per replica is 3"),
    ({"data.group_videos": 2}, 1, "group_videos=2 must be >= 3"),
    ({"data.eval_num_pairs": 15}, 1, "eval_num_pairs=15 must be even"),
    ({"train.num_steps": 0}, 1, r"num_steps=0 must be > 0"),
    ({"data.dataset": "no_such_videos"}, 1, "'no_such_videos' is not prepared"),
    ({"data.train_split": "nope"}, 1, "no split 'nope'"),
    ({"train.warmup_steps": 2}, 1, r"warmup_steps=2 must be in \[0, "
     r"train.num_steps=2\)"),
    ({"train.learning_rate_decay": "linear"}, 1,
     "learning_rate_decay='linear'; expected one of"),
    ({"train.final_learning_rate_fraction": 1.5}, 1,
     "final_learning_rate_fraction=1.5 must be in"),
])
def test_bad_configuration_is_named(fake_config, overrides, num_replicas,
                                    message):
  from l3_tf.training import config as config_lib
  bad = config_lib.apply_overrides(
      fake_config, [f"{k}={v}" for k, v in overrides.items()])
  with pytest.raises(ValueError, match=message):
    plan_lib.check_config(bad, num_replicas)


def test_good_configuration_plan(fake_config):
  plan = plan_lib.check_config(dataclasses.replace(
      fake_config, train=dataclasses.replace(fake_config.train,
                                             global_batch_size=8)), 2)
  assert (plan.batch_size_per_replica, plan.global_batch_size) == (4, 8)
  assert plan.train_videos == 10 and plan.eval_videos == 4
  with pytest.raises(input_pipeline.DatasetError, match="negatives need"):
    plan_lib.check_config(fake_config, 1, num_workers=6)


def test_learning_rate_schedule_values():
  """Warm-up from the first step, then the half cosine down to the floor."""
  from l3_tf.training import config as config_lib
  constant = config_lib.TrainConfig(learning_rate=1e-3, num_steps=10)
  assert schedule_lib.learning_rate_schedule(constant) == 1e-3  # the paper: a float
  cfg = dataclasses.replace(constant, warmup_steps=4,
                            learning_rate_decay="cosine",
                            final_learning_rate_fraction=0.1)
  schedule = schedule_lib.learning_rate_schedule(cfg)
  rates = [float(schedule(step)) for step in range(10)]
  # Steps 0-3: 1/4 ... 4/4 of the peak; then from the peak (step 4) down
  # the cosine over the 6 post-warm-up steps towards 0.1 x the peak.
  expected = [1e-3 * (s + 1) / 4 for s in range(4)] + [
      1e-4 + 0.9e-3 * 0.5 * (1 + np.cos(np.pi * (s - 4) / 6))
      for s in range(4, 10)]
  np.testing.assert_allclose(rates, expected, rtol=1e-6)
  assert float(schedule(10)) == pytest.approx(1e-4)
  assert float(schedule(1000)) == pytest.approx(1e-4)
  warm_then_constant = schedule_lib.learning_rate_schedule(
      dataclasses.replace(constant, warmup_steps=2))
  assert [float(warm_then_constant(s)) for s in (0, 1, 2, 9)] == [
      pytest.approx(v) for v in (5e-4, 1e-3, 1e-3, 1e-3)]
  restored = schedule_lib.WarmupThenDecay.from_config(schedule.get_config())
  assert [float(restored(s)) for s in range(10)] == rates


def test_scheduled_run_follows_its_schedule(fake_config, tmp_path):
  """Each step uses the rate the schedule gives its step, and a restored
  trainer goes on from the checkpointed step count."""
  cfg = dataclasses.replace(fake_config, train=dataclasses.replace(
      fake_config.train, num_steps=3, warmup_steps=2, learning_rate=1e-3,
      learning_rate_decay="cosine", log_every_steps=1))
  workdir = str(tmp_path / "run")
  assert train.train_and_evaluate(cfg, workdir)["step"] == 3
  schedule = schedule_lib.learning_rate_schedule(cfg.train)
  logged = {}
  for path in glob.glob(os.path.join(workdir, "train", "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == "learning_rate":
          logged[event.step] = float(tf.make_ndarray(value.tensor))
  # Logged after step n: the rate of the next update (iteration n).
  assert logged == {n: pytest.approx(float(schedule(n))) for n in (1, 2, 3)}
  assert logged[3] < logged[1]  # decayed
  trainer = train._Trainer(task.avc_task(cfg), cfg,
                           tf.distribute.get_strategy(),
                           plan_lib.check_config(cfg), workdir)
  assert trainer.learning_rate() == pytest.approx(float(schedule(0)))
  assert trainer.restore() == 3
  assert trainer.learning_rate() == pytest.approx(float(schedule(3)))
  trainer.close()
