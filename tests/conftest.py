"""Fixtures shared by the tests of export, embedding and scoring."""

import types

import pytest

from l3_tf import export as export_lib
from l3_tf import testing

TINY_WIDTH = 1 / 32


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
  """A tiny trained model (1/32 width) in a workdir, and its SavedModel.

  Attributes: workdir, config, avc (the Keras model), saved_model (path).
  """
  root = tmp_path_factory.mktemp("tiny_export")
  workdir = str(root / "workdir")
  config, avc = testing.make_trained_workdir(workdir, TINY_WIDTH)
  saved_model = export_lib.export_workdir(
      workdir, str(root / "saved_model"), verify=False)  # export_test checks
  return types.SimpleNamespace(workdir=workdir, config=config, avc=avc,
                               saved_model=saved_model)


@pytest.fixture(scope="session")
def easy_trained(tmp_path_factory):
  """A 1/16-width L3-Net trained for 200 steps on an easy synthetic_av set
  through `train.train_and_evaluate` (see `testing.train_easy_synthetic`);
  about a minute on 2 free cores."""
  return testing.train_easy_synthetic(str(tmp_path_factory.mktemp("easy")))
