"""Configs as code: each module exposes `get_config()`.

`paper` is the paper's setting; `demo` and `test` derive from it.
"""

import importlib

NAMES = ("paper", "demo", "test")


def get_config(name: str):
  """The `Config` of experiments/configs/<name>.py."""
  if name not in NAMES:
    raise ValueError(f"unknown config {name!r}; choose one of {list(NAMES)}")
  return importlib.import_module(f"experiments.configs.{name}").get_config()
