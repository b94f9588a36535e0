"""CPU demo: the synthetic audio-visual dataset and a NARROWED network.

Derived from `paper`; every change is listed here so that reported figures
say what they were measured on.
"""

import dataclasses

from experiments.configs import paper


def get_config():
  config = paper.get_config()
  return dataclasses.replace(
      config,
      name="demo",
      model=dataclasses.replace(config.model, width_multiplier=0.125,
                                batch_norm_momentum=0.9),
      data=dataclasses.replace(config.data, dataset="synthetic_av",
                               eval_split="test", shuffle_videos=256,
                               eval_num_pairs=512),
      train=dataclasses.replace(config.train, batch_size_per_replica=32,
                                learning_rate=1e-3, num_steps=400,
                                checkpoint_every_steps=100,
                                log_every_steps=20),
  )
