"""Configs as code: each module exposes `get_config()`.

`paper` is the paper's setting; `demo` and `test` derive from it. The
supervised baselines' schedules (`l3_tf.evaluation.baselines.BaselinesConfig`) live in
`baselines_<name>.py`, derived the same way; the sound-classification MLP's
(`l3_tf.evaluation.transfer_mlp.MlpSettings`) in `mlp_<name>.py` (`openl3`:
OpenL3's).
"""

import importlib

NAMES = ("paper", "demo", "test")
# AVE-Net variants (model.fusion="distance"); no baselines_<name> of their own.
AVENET_NAMES = ("paper_avenet", "demo_avenet")
MLP_NAMES = ("openl3", "demo", "test")


def get_config(name: str):
  """The `Config` of experiments/configs/<name>.py."""
  if name not in NAMES + AVENET_NAMES:
    raise ValueError(f"unknown config {name!r}; choose one of "
                     f"{list(NAMES + AVENET_NAMES)}")
  return importlib.import_module(f"experiments.configs.{name}").get_config()


def get_baselines_config(name: str):
  """The `BaselinesConfig` of experiments/configs/baselines_<name>.py."""
  if name not in NAMES:
    raise ValueError(f"unknown baselines config {name!r}; choose one of "
                     f"{list(NAMES)}")
  return importlib.import_module(
      f"experiments.configs.baselines_{name}").get_config()


def get_mlp_config(name: str):
  """The `MlpSettings` of experiments/configs/mlp_<name>.py."""
  if name not in MLP_NAMES:
    raise ValueError(f"unknown MLP config {name!r}; choose one of "
                     f"{list(MLP_NAMES)}")
  return importlib.import_module(f"experiments.configs.mlp_{name}").get_config()
