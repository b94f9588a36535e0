"""Tiny config for tests: a 1/16-width network, a few steps."""

import dataclasses

from experiments.configs import demo


def get_config():
  config = demo.get_config()
  return dataclasses.replace(
      config,
      name="test",
      model=dataclasses.replace(config.model, width_multiplier=1 / 16),
      data=dataclasses.replace(config.data, shuffle_videos=16,
                               eval_num_pairs=32),
      train=dataclasses.replace(config.train, batch_size_per_replica=4,
                                num_steps=2, checkpoint_every_steps=1,
                                log_every_steps=1),
  )
