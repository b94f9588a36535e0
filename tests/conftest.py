"""Fixtures shared by the tests: the fake videos, tiny trained models."""

import dataclasses
import types

import pytest

from experiments import configs
from l3_tf.serving import export as export_lib
from tests import fake_videos
from tests import testing

TINY_WIDTH = 1 / 32


@pytest.fixture(scope="session")
def fake_videos_dir(tmp_path_factory):
  """The data_dir of the fake video dataset (`fake_videos`), built once."""
  data_dir = str(tmp_path_factory.mktemp("fake_videos"))
  fake_videos.build(data_dir)
  return data_dir


@pytest.fixture(scope="session")
def fake_config(fake_videos_dir):
  """The "test" config reading the fake videos."""
  base = configs.get_config("test")
  return dataclasses.replace(base, data=dataclasses.replace(
      base.data, dataset=fake_videos.NAME, data_dir=fake_videos_dir))


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
def tiny_bound(tiny_export):
  """How far apart (normwise, relative) two routes through `tiny_export`'s
  network may compute one output (another batch, the export or the Keras
  model, another kernel): `compiled_check.forward_bound` of all its 18
  layers, an upper bound for one tower's path (8)."""
  from l3_tf.training import compiled_check

  return compiled_check.forward_bound(tiny_export.avc)


@pytest.fixture(scope="session")
def easy_trained(tmp_path_factory):
  """A 1/16-width L3-Net trained for 200 steps on an easy synthetic_av set
  through `train.train_and_evaluate` (see `testing.train_easy_synthetic`);
  about a minute on 2 free cores."""
  return testing.train_easy_synthetic(str(tmp_path_factory.mktemp("easy")))


@pytest.fixture(scope="session")
def tiny_avenet_export(tmp_path_factory):
  """A tiny trained AVE-Net (1/32 width, `model.fusion="distance"`) in a
  workdir, and its SavedModel (verified against Keras while exporting).

  Attributes: workdir, config, avc (the Keras model), saved_model (path).
  """
  root = tmp_path_factory.mktemp("tiny_avenet_export")
  workdir = str(root / "workdir")
  config, avc = testing.make_trained_workdir(workdir, TINY_WIDTH,
                                             fusion="distance")
  saved_model = export_lib.export_workdir(workdir, str(root / "saved_model"))
  return types.SimpleNamespace(workdir=workdir, config=config, avc=avc,
                               saved_model=saved_model)


@pytest.fixture(scope="session")
def tiny_avenet_bound(tiny_avenet_export):
  """`tiny_bound` of the tiny AVE-Net: its towers and head (21 layers)."""
  from l3_tf.training import compiled_check

  return compiled_check.forward_bound(tiny_avenet_export.avc)
