"""Shapes, taps and parameter counts of L3-Net."""

import numpy as np
import pytest
import tensorflow as tf

from l3_tf.model import model_summary
from l3_tf.model import networks as model_lib

TINY = model_lib.ModelConfig(width_multiplier=1 / 16)


def _conv_weights(c_in, widths):
  """3x3 kernels of the 8 convs of one tower (no bias: BN follows)."""
  total, previous = 0, c_in
  for width in widths:
    total += 9 * previous * width + 9 * width * width
    previous = width
  return total


def test_full_model_parameter_count():
  avc = model_lib.avc_network(model_lib.ModelConfig())
  counts = model_summary.parameter_counts(avc)
  widths = (64, 128, 256, 512)
  # Kernels: 9 * (3*64 + 64*64 + 64*128 + 128*128 + 128*256 + 256*256
  #               + 256*512 + 512*512) = 9 * 520,384 = 4,683,456 (vision);
  # the audio tower's first conv sees 1 channel: 4,683,456 - 9*2*64 = 4,682,304.
  # BN: gamma, beta, moving mean, moving var per channel:
  #     4 * 2 * (64 + 128 + 256 + 512) = 7,680 per tower.
  bn = 4 * 2 * sum(widths)
  assert _conv_weights(3, widths) == 4_683_456
  assert counts["vision_tower"] == 4_683_456 + bn == 4_691_136
  assert counts["audio_tower"] == 4_682_304 + bn == 4_689_984
  # Fusion: fc1 1024*128 + 128, fc2 128*2 + 2 = 131,458.
  assert counts["fusion_head"] == 1024 * 128 + 128 + 128 * 2 + 2
  # Total 9,512,578: "about 4.7M per tower, about 9.5M in total".
  assert counts["total"] == 9_512_578
  # Trainable excludes BN's moving mean and variance: 2 per channel, 2 convs
  # per block, 2 towers = 8 * 960 = 7,680.
  assert counts["trainable"] == 9_512_578 - 2 * 2 * 2 * sum(widths) == 9_504_898


def test_full_tower_taps_have_documented_shapes():
  avc = model_lib.avc_network(model_lib.ModelConfig())
  vision, audio, _ = model_lib.towers_of(avc)
  v = {k: tuple(t.shape) for k, t in vision.output.items()}
  a = {k: tuple(t.shape) for k, t in audio.output.items()}
  assert v == {"embedding_512": (None, 512), "embedding_8192": (None, 8192),
               "conv4_2": (None, 28, 28, 512),
               "conv4_2_pre_relu": (None, 28, 28, 512)}
  assert a == {"embedding_512": (None, 512), "embedding_6144": (None, 6144),
               "conv4_2": (None, 32, 24, 512),
               "conv4_2_pre_relu": (None, 32, 24, 512)}
  assert 4 * 4 * 512 == 8192 and 4 * 3 * 512 == 6144
  assert tuple(avc.output.shape) == (None, 2)


def test_layer_names_per_tower():
  vision = model_lib.vision_tower(TINY)
  names = {layer.name for layer in vision.layers}
  for block in range(1, 5):
    assert {f"conv{block}_1", f"conv{block}_2", f"pool{block}"} <= names


def test_tiny_forward_pass_and_taps():
  avc = model_lib.avc_network(TINY)
  vision, audio, _ = model_lib.towers_of(avc)
  rng = np.random.default_rng(0)
  image = rng.uniform(-1, 1, (2, 224, 224, 3)).astype(np.float32)
  spec = rng.normal(size=(2, 257, 199, 1)).astype(np.float32)
  logits = avc({"image": image, "spectrogram": spec}, training=False)
  assert logits.shape == (2, 2) and logits.dtype == tf.float32
  v = vision(image, training=False)
  a = audio(spec, training=False)
  width = TINY.widths[-1]
  assert v["embedding_8192"].shape == (2, 4 * 4 * width)
  assert a["embedding_6144"].shape == (2, 4 * 3 * width)
  # The audio tap is before ReLU (can be negative); the vision tap after.
  assert a["embedding_6144"].numpy().min() < 0
  assert v["embedding_8192"].numpy().min() >= 0
  np.testing.assert_allclose(
      v["embedding_512"], v["conv4_2"].numpy().max(axis=(1, 2)))
  # The tap is conv4_2 max-pooled with kernel = stride = (7, 7) / (8, 8).
  pooled = a["conv4_2_pre_relu"].numpy().reshape(2, 4, 8, 3, 8, width).max(
      axis=(2, 4))
  np.testing.assert_allclose(a["embedding_6144"], pooled.reshape(2, -1))


def test_weight_decay_from_config():
  config = model_lib.ModelConfig(width_multiplier=1 / 16, weight_decay=1e-3)
  avc = model_lib.avc_network(config)
  kernels = [v for v in avc.trainable_variables if len(v.shape) >= 2]
  expected = 1e-3 * sum(float(tf.reduce_sum(k ** 2)) for k in kernels)
  assert len(avc.losses) == len(kernels) == 2 * 8 + 2
  # Each loss is 1e-3 * the same float32 sum of squares (a square differing
  # by at most an ulp, u relative); add_n over 18 of them and the product
  # round 18 + 1 more times: within (18 + 2) u (worst case, positive terms).
  rounding = (len(kernels) + 2) * np.finfo(np.float32).eps / 2
  np.testing.assert_allclose(float(tf.add_n(avc.losses)), expected,
                             rtol=rounding)
  no_decay = model_lib.avc_network(
      model_lib.ModelConfig(width_multiplier=1 / 16, weight_decay=0.0))
  assert not no_decay.losses


def test_width_multiplier_and_bn_free_variant():
  config = model_lib.ModelConfig(width_multiplier=0.25, use_batch_norm=False)
  assert config.widths == (16, 32, 64, 128) and config.is_narrowed
  avc = model_lib.avc_network(config)
  assert not any("bn" in layer.name for tower in model_lib.towers_of(avc)
                 for layer in tower.layers)


def test_bad_model_config_is_named():
  with pytest.raises(ValueError, match="width_multiplier=0"):
    model_lib.ModelConfig(width_multiplier=0)
