"""AVE-Net at the CPU demo's scale: `demo` with the distance fusion head
(`model.fusion = "distance"`); used by `make demo-search` and the retrieval
table of the README."""

import dataclasses

from experiments.configs import demo


def get_config():
  config = demo.get_config()
  return dataclasses.replace(
      config, name="demo_avenet",
      model=dataclasses.replace(config.model, fusion="distance"),
      # Its README figures were measured with the demo's former training.
      train=dataclasses.replace(config.train, **demo.CONSTANT_SCHEDULE))
