"""The flags shared by the training and evaluation binaries (binaries only)."""

from absl import flags

from experiments import configs
from l3_tf.training import config as config_lib

CONFIG = flags.DEFINE_string(
    "config", "paper", f"experiment config, one of {list(configs.NAMES + configs.AVENET_NAMES)}")
SET = flags.DEFINE_multi_string(
    "set", [], "override one config field, e.g. --set train.num_steps=100 "
    "--set data.data_dir=/data (repeatable)")


def resolved_config(defaults: tuple[str, ...] = ()):
  """The named config with `defaults`, then every --set, applied.

  Raises:
    ValueError: an unknown config name or a bad override (named).
  """
  config = configs.get_config(CONFIG.value)
  return config_lib.apply_overrides(config, [*defaults, *SET.value])
