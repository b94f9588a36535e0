"""Supervised baselines at the CPU demo's scale (derived from the paper's):
the same schedule as the demo's L3-Net (`demo`: 400 steps of 32, Adam 1e-3),
for the classifiers and for the fusion head."""

import dataclasses

from experiments.configs import baselines_paper


def get_config():
  config = baselines_paper.get_config()
  return dataclasses.replace(
      config, name="demo",
      classifier=dataclasses.replace(
          config.classifier, batch_size_per_replica=32, learning_rate=1e-3,
          num_steps=400, checkpoint_every_steps=100, log_every_steps=20,
          eval_num_examples=512),
      head_num_steps=400, head_learning_rate=1e-3)
