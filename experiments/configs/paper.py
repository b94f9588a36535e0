"""The paper's setting (PAPER.md §2-§3): full network, batch 16 per replica
(256 on 16 GPUs), Adam lr 1e-4, weight decay 1e-5, Flickr-SoundNet."""

from l3_tf import config as config_lib


def get_config() -> config_lib.Config:
  return config_lib.Config(name="paper")
