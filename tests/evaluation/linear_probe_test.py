"""The ImageNet linear probe, under TFDS mock data and on an image folder."""

import numpy as np
import PIL.Image
import pytest
import tensorflow_datasets as tfds

from l3_tf.evaluation import linear_probe
from l3_tf.model import networks as model_lib

TINY = model_lib.ModelConfig(width_multiplier=1 / 32)


def _write_folder(root, per_class=(12, 6)):
  """3 classes told apart by colour, in <root>/<split>/<label>/*.jpg."""
  rng = np.random.default_rng(0)
  colours = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}
  for split, count in zip(("train", "test"), per_class):
    for label, colour in colours.items():
      folder = root / split / label
      folder.mkdir(parents=True)
      for i in range(count):
        image = rng.integers(0, 60, (120, 160, 3))
        top, left = rng.integers(0, 60), rng.integers(0, 80)
        image[top:top + 60, left:left + 80] = colour
        PIL.Image.fromarray(image.astype(np.uint8)).save(folder / f"{i}.jpg")


def test_probe_on_mock_imagenet():
  config = linear_probe.ProbeConfig(batch_size=4, epochs=1,
                                    max_train_examples=8, max_eval_examples=4)
  with tfds.testing.mock_data(num_examples=8,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    results = linear_probe.run(model_lib.vision_tower(TINY), config)
  assert results["num_classes"] == 1000
  assert results["num_train_examples"] == 8 and results["num_eval_examples"] == 4
  assert results["feature_dim"] == 4 * 4 * TINY.widths[-1]
  assert 0 <= results["top1"] <= results["top5"] <= 1
  assert np.isfinite(results["final_train_loss"])


def test_probe_learns_on_an_image_folder(tmp_path):
  _write_folder(tmp_path)
  config = linear_probe.ProbeConfig(
      dataset="folder", image_folder=str(tmp_path), eval_split="test",
      batch_size=12, epochs=15, learning_rate=0.05, augment=False)
  vision = model_lib.vision_tower(TINY)
  frozen_before = [w.numpy().copy() for w in vision.weights]
  results = linear_probe.run(vision, config)
  assert results["num_train_examples"] == 36
  assert results["num_eval_examples"] == 18
  assert results["top5_k"] == 3 and results["top5"] == 1.0
  # Colour survives random conv features: far above chance (1/3).
  assert results["top1"] >= 0.8
  for before, after in zip(frozen_before, vision.weights):
    np.testing.assert_array_equal(before, after.numpy())  # trunk frozen
  path = linear_probe.write_results(results, str(tmp_path / "out"))
  assert path.endswith("results.json")


def test_missing_folder_and_split_are_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="image_folder="):
    linear_probe.run(model_lib.vision_tower(TINY), linear_probe.ProbeConfig(
        dataset="folder", image_folder=str(tmp_path / "nope")))
  _write_folder(tmp_path, per_class=(1, 1))
  with pytest.raises(ValueError, match="split 'validation' not in"):
    linear_probe.run(model_lib.vision_tower(TINY), linear_probe.ProbeConfig(
        dataset="folder", image_folder=str(tmp_path)))


def test_binary_on_an_image_folder(tmp_path):
  import subprocess
  import sys
  _write_folder(tmp_path / "images", per_class=(4, 2))
  out = subprocess.run(
      [sys.executable, "-m", "experiments.imagenet_linear_probe",
       "--weights=random", "--random_config=test", "--dataset=folder",
       f"--image_folder={tmp_path / 'images'}", "--eval_split=test",
       "--epochs=1", "--batch_size=6", f"--output_dir={tmp_path / 'out'}",
       f"--record={tmp_path / 'results' / 'probe.json'}"],
      capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert (tmp_path / "out" / "results.json").exists()
  assert '"num_train_examples": 12' in out.stdout
  from l3_tf.evaluation import records
  record, = records.read_records(str(tmp_path / "results"))
  assert (record["experiment"], record["dataset"], record["method"]) == (
      "linear_probe", "images", "Ours random")
  assert record["metric"] == "top1" and 0 <= record["value"] <= 1
  assert record["scale"]["data"].startswith("images full: 12 training images")
  assert record["scale"]["training"].startswith("untrained")
