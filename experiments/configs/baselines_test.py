"""Tiny baselines for tests: a few steps of a few examples."""

import dataclasses

from experiments.configs import baselines_demo


def get_config():
  config = baselines_demo.get_config()
  return dataclasses.replace(
      config, name="test",
      classifier=dataclasses.replace(
          config.classifier, batch_size_per_replica=4, num_steps=2,
          checkpoint_every_steps=1, log_every_steps=1, eval_num_examples=8),
      head_num_steps=2)
