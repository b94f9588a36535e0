"""FusedBatchNormalization computes what keras.layers.BatchNormalization does."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from l3_tf.model import fused_batch_norm
from l3_tf.model import model_summary
from l3_tf.model import networks as model_lib
from l3_tf.training import compiled_check
from tests import testing


def _pair(momentum=0.9, channels=5, exact=False, **kwargs):
  """The stock layer and the fused one, built with the same random weights
  (and with `exact`, the stock layer in float64 third)."""
  stock = keras.layers.BatchNormalization(momentum=momentum, **kwargs)
  fused = fused_batch_norm.FusedBatchNormalization(momentum=momentum, **kwargs)
  layers = [stock, fused]
  if exact:
    layers.append(keras.layers.BatchNormalization(momentum=momentum,
                                                  dtype="float64", **kwargs))
  rng = np.random.default_rng(0)
  shape = (4, 9, 7, channels)
  for layer in layers:
    layer.build(shape)
  weights = [rng.normal(size=channels), rng.normal(size=channels),
             rng.normal(size=channels), rng.uniform(0.5, 2.0, size=channels)]
  weights = [w.astype(np.float32) for w in weights]
  for layer in layers:
    layer.set_weights(weights)
  return tuple(layers)


def _run(layer, x, training):
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = layer(x, training=training)  # [4, 9, 7, 5]
    loss = tf.reduce_sum(tf.cast(y, tf.float32) ** 2 * tf.range(
        1.0, 1.0 + x.shape[-1]))
  grads = tape.gradient(loss, [x, *layer.trainable_variables])
  return y, grads


# Float32 unit round-off.
U = np.finfo(np.float32).eps / 2


def _within_bound(got, exact, n: int, scale: float, what: str):
  """|got - exact| <= (n + 4) u x scale: a float32 value built from sums of
  n terms (worst-case bound gamma_n times the sum of the terms' magnitudes,
  `scale`; Higham, "Accuracy and Stability of Numerical Algorithms",
  Lemma 3.1) and a few more roundings."""
  _within(got, exact, (n + 4) * U * scale, what)


def _within(got, want, allowed: float, what: str):
  """max |got - want| <= allowed."""
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  error = np.abs(got - want).max()
  assert error <= allowed, (what, error, allowed)


@pytest.mark.parametrize("training", [True, False])
def test_same_outputs_gradients_and_moving_statistics(training):
  """Fused and stock, each against the stock layer in float64, within the
  float32 bound of sums over the n = 4 x 9 x 7 = 252 positions of a
  channel. Normalising has the conditioning k = (|x| + |mean|) / sigma
  (cancellation in x - mean); the statistics and outputs scale with
  k max |value|. With dy = 2 c y the loss' gradient: gamma's and beta's
  gradients sum n terms of at most |dy| max(1, |x_hat|); x's is
  gamma / sigma (dy - mean(dy) - x_hat mean(dy x_hat)), at most
  |dy| (2 + x_hat^2) gamma / sigma, its means over n terms."""
  stock, fused, exact = _pair(exact=True)
  x = tf.random.stateless_normal([4, 9, 7, 5], seed=[1, 2]) * 3.0 + 1.5
  y_exact, g_exact = _run(exact, tf.cast(x, tf.float64), training)
  n = 4 * 9 * 7
  values = np.asarray(x).reshape(-1, 5)
  sigma = values.std(axis=0).min()
  condition = float(np.abs(values).max() + np.abs(values.mean())) / sigma
  x_hat = np.abs(values - values.mean(axis=0)).max() / sigma
  dy = 2 * 5 * np.abs(np.asarray(y_exact)).max()
  gamma = np.abs(exact.get_weights()[0]).max()
  if training:
    x_scale = dy * (2 + x_hat ** 2) * gamma / sigma * condition
  else:  # the moving statistics: one product per element
    x_scale = dy * gamma / np.sqrt(exact.get_weights()[3].min() + 1e-3)
  scales = [x_scale] + 2 * [n * dy * max(1.0, x_hat) * condition]
  for name, layer in (("stock", stock), ("fused", fused)):
    y, grads = _run(layer, x, training)
    _within_bound(y, y_exact, n, condition * np.abs(y_exact).max(),
                  f"{name} output")
    for i, (a, b, scale) in enumerate(zip(grads, g_exact, scales)):
      _within_bound(a, b, n, scale, f"{name} gradient {i}")
    # gamma, beta, moving mean, moving variance (biased batch variance).
    for i, (a, b) in enumerate(zip(layer.get_weights(), exact.get_weights())):
      _within_bound(a, b, n, condition * np.abs(b).max(), f"{name} weight {i}")
  moved = not np.allclose(fused.get_weights()[2], _pair()[1].get_weights()[2])
  assert moved == training


# 5 channels: through the float32 kernel between casts; 32: the bfloat16
# kernel itself (fused_batch_norm.NATIVE_BFLOAT16_MIN_CHANNELS).
@pytest.mark.parametrize("channels", [5, 32])
def test_bfloat16_stays_bfloat16_and_matches(channels):
  assert (channels >= fused_batch_norm.NATIVE_BFLOAT16_MIN_CHANNELS) == (
      channels == 32)
  if channels >= fused_batch_norm.NATIVE_BFLOAT16_MIN_CHANNELS:
    testing.skip_unless_bf16_runs()  # the native bfloat16 kernel
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    stock, fused = _pair(channels=channels)
    x = tf.random.stateless_normal([4, 9, 7, channels], seed=[3, 4])
    y_stock, g_stock = _run(stock, x, True)
    y_fused, g_fused = _run(fused, x, True)
  finally:
    keras.mixed_precision.set_global_policy(previous)
  assert y_fused.dtype == tf.bfloat16
  # Both normalise the same bfloat16 input with float32 statistics (the
  # float32 bound of the test above: (n + 4) u cond |y|) and round y to
  # bfloat16 (u_b = 2^-8): two roundings of values that close lie within
  # 2 u_b |y| of each other. The loss' dy = 2 c y (c <= channels) moves by
  # 2 channels that much; x's gradient, gamma / sigma (dy - mean(dy) -
  # x_hat mean(dy x_hat)), by gamma / sigma (2 + x_hat^2) times it plus its
  # own rounding to bfloat16 (2 u_b |dx|); gamma's and beta's, sums of n
  # terms dy max(1, |x_hat|) in float32, by n max(1, x_hat) times it. The
  # moving statistics are float32 sums of the same inputs, as above.
  u_b = 2.0**-8
  n = 4 * 9 * 7
  values = np.asarray(tf.cast(tf.cast(x, tf.bfloat16), tf.float32),
                      np.float64).reshape(-1, channels)
  sigma = values.std(axis=0).min()
  condition = float(np.abs(values).max() + np.abs(values.mean())) / sigma
  x_hat = np.abs(values - values.mean(axis=0)).max() / sigma
  gamma = np.abs(stock.get_weights()[0]).max()
  y = np.asarray(tf.cast(y_stock, tf.float32), np.float64)
  y_error = (2 * u_b + (n + 4) * U * condition) * np.abs(y).max()
  _within(tf.cast(y_fused, tf.float32), y, y_error, "bfloat16 output")
  dy_error = 2 * channels * y_error
  dx = np.asarray(tf.cast(g_stock[0], tf.float32), np.float64)
  errors = ([gamma / sigma * (2 + x_hat**2) * dy_error
             + 2 * u_b * np.abs(dx).max()]
            + 2 * [n * max(1.0, x_hat) * dy_error])
  for i, (a, b, error) in enumerate(zip(g_fused, g_stock, errors)):
    _within(tf.cast(a, tf.float32), tf.cast(b, tf.float32), error,
            f"bfloat16 gradient {i}")
  for i, (a, b) in enumerate(zip(fused.get_weights(), stock.get_weights())):
    _within_bound(a, b, n, 2 * condition * np.abs(b).max(),
                  f"bfloat16 weight {i}")


def test_frozen_layer_uses_moving_statistics():
  stock, fused = _pair()
  stock.trainable = fused.trainable = False
  x = tf.random.stateless_normal([4, 9, 7, 5], seed=[5, 6])
  before = fused.get_weights()
  # gamma (x - mean) / sqrt(var + eps) + beta element by element: a few
  # roundings each ((0 + 4) u), of values up to `scale`, in both layers.
  gamma, beta, mean, variance = before
  largest = np.abs(np.asarray(x)).max()
  scale = 2 * np.max(np.abs(gamma) * (largest + np.abs(mean))
                     / np.sqrt(variance + 1e-3) + np.abs(beta))
  _within_bound(fused(x, training=True), stock(x, training=True), 0, scale,
                "frozen output")
  for a, b in zip(fused.get_weights(), before):
    np.testing.assert_array_equal(a, b)


def test_falls_back_outside_the_fused_kernel():
  # 2-D input: not fusable, the parent's path gives the same numbers.
  stock = keras.layers.BatchNormalization()
  fused = fused_batch_norm.FusedBatchNormalization()
  x = tf.random.stateless_normal([6, 3], seed=[7, 8])
  # The same code on the same numbers: equal to the bit.
  np.testing.assert_array_equal(fused(x, training=True),
                                stock(x, training=True))


def test_model_keeps_parameters_and_checkpoints_interchangeable():
  fused_cfg = model_lib.ModelConfig(width_multiplier=1 / 32)
  stock_cfg = model_lib.ModelConfig(width_multiplier=1 / 32,
                                    fused_batch_norm=False)
  fused = model_lib.avc_network(fused_cfg)
  stock = model_lib.avc_network(stock_cfg)
  assert (model_summary.parameter_counts(fused)
          == model_summary.parameter_counts(stock))
  stock.set_weights(fused.get_weights())
  rng = np.random.default_rng(1)
  inputs = {"image": rng.uniform(-1, 1, (2, 224, 224, 3)).astype(np.float32),
            "spectrogram": rng.normal(size=(2, 257, 199, 1)).astype(np.float32)}
  testing.assert_close_normwise(fused(inputs, training=False),
                                stock(inputs, training=False),
                                compiled_check.forward_bound(stock),
                                what="logits, fused vs stock BN")
  vision = fused.get_layer("vision_tower")
  assert isinstance(vision.get_layer("conv1_1_bn"),
                    fused_batch_norm.FusedBatchNormalization)
