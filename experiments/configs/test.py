"""Tiny config for tests: a 1/32-width network, tiny batches, a few steps.

Tests point `data.dataset` / `data.data_dir` at a small generated dataset.
"""

import dataclasses

from experiments.configs import demo


def get_config():
  config = demo.get_config()
  return dataclasses.replace(
      config,
      name="test",
      model=dataclasses.replace(config.model, width_multiplier=1 / 32),
      data=dataclasses.replace(config.data, shuffle_videos=8, group_videos=4,
                               eval_num_pairs=16, eval_batch_size=8),
      train=dataclasses.replace(config.train, **{
          **demo.CONSTANT_SCHEDULE, "num_steps": 2,
          "batch_size_per_replica": 4, "checkpoint_every_steps": 1,
          "log_every_steps": 1, "summary_images_every_steps": 1},
                                summary_images=2),
  )
