"""AVE-Net ("Objects that Sound", Arandjelovic & Zisserman 2018): the
paper's setting with the distance fusion head instead of L3's concatenation
(`model.fusion = "distance"`, see `l3_tf.model.networks.distance_head`). Everything
else (towers, AVC task, data, optimiser) is `paper`'s."""

import dataclasses

from experiments.configs import paper


def get_config():
  config = paper.get_config()
  return dataclasses.replace(
      config, name="paper_avenet",
      model=dataclasses.replace(config.model, fusion="distance"))
