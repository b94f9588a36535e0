"""The paper's setting (PAPER.md §2-§3): full network, batch 16 per replica
(256 on 16 GPUs), Adam lr 1e-4, weight decay 1e-5, Flickr-SoundNet.

The execution plan is spelled out, and printed at the start of every run
(`l3_tf.training.plan.describe_plan`):

  replicas        whatever the strategy gives: 16 GPUs -> 16 x 16 = 256
                  pairs per step (`--set train.cpu_replicas=16` rehearses
                  it on a CPU)
  batch norm      per replica, as the paper's TF 1.x towers had it
                  (`ModelConfig.batch_norm` says why)
  precision       float32, as in 2017
  XLA             off (`TrainConfig.jit_compile`: not faster on the CPU we
                  measured; turn it on for GPUs)
  steps per loop  100 = the logging period: one host round trip per 100
                  steps; checkpoints (every 1000) fall on loop boundaries
  input           local (set `data.service_address` to feed the GPUs from
                  a tf.data service on other machines)
"""

import dataclasses

from l3_tf.training import config as config_lib


def get_config() -> config_lib.Config:
  config = config_lib.Config(name="paper")
  return dataclasses.replace(
      config,
      model=dataclasses.replace(config.model, batch_norm="per_replica"),
      data=dataclasses.replace(config.data, service_address=None),
      train=dataclasses.replace(config.train, mixed_precision=False,
                                jit_compile=False, steps_per_loop=100),
  )
