"""Helpers shared by the tests of l3_tf, data_prep and experiments."""

import os
import pathlib

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# Real recordings live beside the project, never inside it (see README).
SHARED_DATA = pathlib.Path(
    os.environ.get("L3_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def shared_data(name: str) -> pathlib.Path:
  """Path of ../shared/data/<name>; skips the calling test when absent."""
  import pytest  # only tests call this

  path = SHARED_DATA / name
  if not path.is_dir():
    pytest.skip(f"real data folder {path} is absent")
  return path
