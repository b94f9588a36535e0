"""AVE-Net (`model.fusion = "distance"`): shapes, unit norm, the distance
head, parameter counts, configs, and training + resume + evaluation."""

import dataclasses
import json
import math

import numpy as np
import pytest
import tensorflow as tf

from experiments import configs
from l3_tf.model import model_summary
from l3_tf.model import networks as model_lib
from l3_tf.training import compiled_check
from l3_tf.training import config as config_lib
from l3_tf.training import train
from l3_tf.training import workdir as workdir_lib
from tests import testing

TINY = model_lib.ModelConfig(width_multiplier=1 / 32, fusion="distance")


def _inputs(batch=3, seed=0):
  rng = np.random.default_rng(seed)
  return {"image": rng.uniform(-1, 1, (batch, 224, 224, 3)).astype(np.float32),
          "spectrogram": rng.normal(-2, 1, (batch, 257, 199, 1)).astype(
              np.float32)}


def test_full_width_parameter_count():
  avc = model_lib.avc_network(model_lib.ModelConfig(fusion="distance"))
  counts = model_summary.parameter_counts(avc)
  # Towers unchanged (model_test: 4,691,136 + 4,689,984). Head, per modality:
  # fc1 512*128 + 128 = 65,664, fc2 128*128 + 128 = 16,512 -> 82,176;
  # both modalities 164,352; fc3 1*2 + 2 = 4 -> 164,356.
  assert counts["fusion_head"] == 2 * (512 * 128 + 128 + 128 * 128 + 128) + 4
  assert counts["fusion_head"] == 164_356
  assert counts["total"] == 4_691_136 + 4_689_984 + 164_356 == 9_545_476
  assert tuple(avc.output.shape) == (None, 2)
  vision, audio = model_lib.projections_of(avc)
  assert tuple(vision.output.shape) == tuple(audio.output.shape) == (None, 128)


def test_shared_embeddings_are_unit_norm_and_head_is_their_distance():
  avc = model_lib.avc_network(TINY)
  vision_tower, audio_tower, head = model_lib.towers_of(avc)
  vision, audio = model_lib.projections_of(avc)
  inputs = _inputs()
  v = vision(vision_tower(inputs["image"])["embedding_512"])  # [3, 128]
  a = audio(audio_tower(inputs["spectrogram"])["embedding_512"])  # [3, 128]
  assert v.shape == a.shape == (3, 128)
  unit = testing.unit_norm_tolerance(128)
  np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=unit)
  np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=unit)
  # The logits depend on the pair only through ||v - a||: fc3 at its
  # initialisation gives (d - sqrt 2, sqrt 2 - d). The network computes v
  # and a again: each within the forward bound of these (unit vectors), so
  # d within twice it; its float32 squared distance, 128 terms of at most
  # 4, within 512 u, so d within 512 u / d; fc3 adds a few roundings.
  d = np.linalg.norm(v.numpy() - a.numpy(), axis=1)
  logits = avc(inputs, training=False).numpy()
  u = np.finfo(np.float32).eps / 2
  allowed = 2 * compiled_check.forward_bound(avc) + (512 / d.min() + 8) * u
  np.testing.assert_allclose(logits[:, 0], d - math.sqrt(2), atol=allowed)
  np.testing.assert_allclose(logits[:, 1], math.sqrt(2) - d, atol=allowed)
  # Swapping which frame goes with which sound changes d and the logits.
  swapped = avc({"image": inputs["image"],
                 "spectrogram": inputs["spectrogram"][::-1]}, training=False)
  assert not np.allclose(swapped.numpy()[[0, 2]], logits[[0, 2]])


def test_distance_layer_is_euclidean_with_finite_gradient():
  layer = model_lib.PairDistance()
  a = tf.constant([[3.0, 0.0], [1.0, 1.0]])
  b = tf.constant([[0.0, 4.0], [1.0, 1.0]])
  with tf.GradientTape() as tape:
    tape.watch(a)
    d = layer([a, b])
  # sqrt(25) is exact; sqrt(max(0, 1e-12)) within the float32 rounding of
  # 1e-12 (halved by the root) and the root's own: 1.5 u relative.
  np.testing.assert_allclose(d.numpy()[:, 0], [5.0, 1e-6], rtol=1.5 * 2.0**-24,
                             atol=0)
  assert np.isfinite(tape.gradient(d, a).numpy()).all()


def test_fusion_is_checked_and_l3_has_no_shared_space():
  with pytest.raises(ValueError, match="fusion='dot'"):
    model_lib.ModelConfig(fusion="dot")
  l3 = model_lib.avc_network(dataclasses.replace(TINY, fusion="concat"))
  assert not model_lib.has_shared_space(l3)
  with pytest.raises(ValueError, match="no shared audio-image space"):
    model_lib.projections_of(l3)
  assert model_lib.ModelConfig().fusion == "concat"  # L3 stays the default


def test_configs():
  paper, avenet = configs.get_config("paper"), configs.get_config("paper_avenet")
  assert avenet.model == dataclasses.replace(paper.model, fusion="distance")
  assert dataclasses.replace(avenet, name="paper", model=paper.model) == paper
  demo = configs.get_config("demo_avenet")
  assert demo.model.fusion == "distance" and demo.model.is_narrowed
  overridden = config_lib.override(paper, "model.fusion=distance")
  assert overridden.model == avenet.model
  # The recorded config round-trips the choice.
  again = config_lib.from_dict(config_lib.Config,
                               json.loads(config_lib.to_json(avenet)))
  assert again.model.fusion == "distance"


@pytest.mark.slow  # 28 s at load ~4 on 2 cores (two traced training runs)
def test_train_resume_evaluate(fake_config, tmp_path):
  """The one training loop trains AVE-Net, records it, and resumes it."""
  config = dataclasses.replace(
      fake_config, model=dataclasses.replace(fake_config.model,
                                             fusion="distance"),
      train=dataclasses.replace(fake_config.train, num_steps=1))
  workdir = str(tmp_path / "run")
  result = train.train_and_evaluate(config, workdir)
  assert result["step"] == 1 and 0 <= result["eval"]["accuracy"] <= 1
  assert workdir_lib.read_config(workdir).model.fusion == "distance"
  _, restored, _ = workdir_lib.restore_avc_model(workdir)
  assert model_lib.has_shared_space(restored)
  longer = dataclasses.replace(config, train=dataclasses.replace(
      config.train, num_steps=2))
  result = train.train_and_evaluate(longer, workdir)
  assert result["start_step"] == 1 and result["step"] == 2
  # An L3 network cannot silently load AVE-Net weights.
  l3 = model_lib.avc_network(fake_config.model, fake_config.image,
                             fake_config.audio)
  status = tf.train.Checkpoint(model=l3).restore(
      workdir_lib.latest_checkpoint(workdir))
  with pytest.raises(AssertionError):
    status.assert_existing_objects_matched()
