"""Supervised baselines at the CPU demo's scale (derived from the paper's):
the classifiers and the fusion head each get the demo L3-Net's batch and its
former constant schedule (`demo.CONSTANT_SCHEDULE`: learning rate and
number of steps), with which their recorded figures were measured."""

import dataclasses

from experiments.configs import baselines_paper
from experiments.configs import demo


def get_config():
  config = baselines_paper.get_config()
  # The schedule their recorded figures were measured with (constant).
  l3 = dataclasses.replace(demo.get_config().train, **demo.CONSTANT_SCHEDULE)
  return dataclasses.replace(
      config, name="demo",
      classifier=dataclasses.replace(
          config.classifier, batch_size_per_replica=l3.batch_size_per_replica,
          learning_rate=l3.learning_rate, num_steps=l3.num_steps,
          checkpoint_every_steps=l3.checkpoint_every_steps,
          log_every_steps=l3.log_every_steps, eval_num_examples=512),
      head_num_steps=l3.num_steps, head_learning_rate=l3.learning_rate)
