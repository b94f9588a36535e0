"""BatchNormalization on TensorFlow's fused kernel: the same layer, one op.

Keras 3's `BatchNormalization` computes its moments and its normalisation
with generic ops: mean, squared difference, mean, then multiply-adds, each a
full pass over the activation (and their gradients another dozen, including
`Tile`s broadcasting the moments back). At the CPU demo width (1/8) these
memory-bound passes took 55% of the training step's op time, more than the
convolutions (profile in `benchmarks/profile_step.py`). TensorFlow's
`FusedBatchNormV3` (oneDNN on x86) does the forward in one pass and its
gradient in one more.

Under mixed bfloat16, maps of at least `NATIVE_BFLOAT16_MIN_CHANNELS`
channels go to the kernel as bfloat16 (statistics in float32 inside it);
narrower ones run through the float32 kernel between two casts. Measured
with TF 2.16.2 on an AMD EPYC with AVX512-BF16 (no AMX), idle, forward +
gradient (+ ReLU), interleaved: the bfloat16 kernel is 1.5-1.8x the cast
route from 16 channels up ([32, 112, 112, 16] 1.58x; [16, 224, 224, 64]
1.59x; [16, 28, 28, 512] 1.76x; [16, 56, 56, 16] 0.93x, even), but
2.3-6x slower at 8 channels ([32, 224, 224, 8]: 215 ms vs 38 ms), where
oneDNN has no blocked layout for it. At full width every BN has >= 64
channels; the demo width's first block has 8.

`FusedBatchNormalization` is a drop-in subclass: the same variables (gamma,
beta, moving mean, moving variance, so checkpoints are interchangeable), the
same arithmetic (normalised with the biased batch variance, moving statistics
updated with the biased batch variance as Keras does) and the same
training/inference semantics (a non-trainable layer uses its moving
statistics). It falls back to the parent whenever the fused kernel does not
apply: another backend, a non-4-D input, a channel axis other than the last,
a mask, renorm, synchronized BN or a float16 input.
"""

import keras

# Narrower bfloat16 maps go through the float32 kernel (module docstring).
NATIVE_BFLOAT16_MIN_CHANNELS = 16


@keras.saving.register_keras_serializable(package="l3_tf")
class FusedBatchNormalization(keras.layers.BatchNormalization):
  """`keras.layers.BatchNormalization` over channels-last 4-D maps, fused."""

  def _fusable(self, inputs, mask) -> bool:
    axis = self.axis if isinstance(self.axis, int) else None
    return (keras.backend.backend() == "tensorflow"
            and mask is None
            and len(inputs.shape) == 4
            and axis in (-1, 3)
            and not self.renorm
            and not getattr(self, "synchronized", False)
            and self.scale and self.center
            and inputs.dtype in ("float32", "bfloat16"))

  def call(self, inputs, training=None, mask=None):
    if not self._fusable(inputs, mask):
      return super().call(inputs, training=training, mask=mask)
    import tensorflow as tf  # this path runs only on the TF backend

    # float32 statistics always; bfloat16 maps of >= 16 channels into the
    # kernel as they are, narrower ones through the float32 kernel (module
    # docstring); the output in the compute dtype.
    if not (inputs.dtype == "bfloat16"
            and inputs.shape[-1] >= NATIVE_BFLOAT16_MIN_CHANNELS):
      inputs = tf.cast(inputs, tf.float32)  # [b, h, w, c]
    gamma = tf.cast(self.gamma, tf.float32)  # [c]
    beta = tf.cast(self.beta, tf.float32)  # [c]
    if training and self.trainable:
      # y: [b, h, w, c]; mean, variance: [c].
      # The kernel returns the Bessel-corrected variance (n / (n - 1)) for
      # the moving average; Keras averages the biased one, so undo it.
      outputs, mean, unbiased, *_ = tf.raw_ops.FusedBatchNormV3(
          x=inputs, scale=gamma, offset=beta,
          mean=tf.zeros([0], tf.float32), variance=tf.zeros([0], tf.float32),
          epsilon=self.epsilon, exponential_avg_factor=1.0,
          data_format="NHWC", is_training=True)
      shape = tf.shape(inputs)
      count = tf.cast(shape[0] * shape[1] * shape[2], tf.float32)
      variance = unbiased * tf.maximum(count - 1.0, 0.0) / count
      self.moving_mean.assign(
          self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
      self.moving_variance.assign(
          self.moving_variance * self.momentum
          + variance * (1.0 - self.momentum))
    else:
      outputs, *_ = tf.raw_ops.FusedBatchNormV3(
          x=inputs, scale=gamma, offset=beta,
          mean=tf.cast(self.moving_mean, tf.float32),
          variance=tf.cast(self.moving_variance, tf.float32),
          epsilon=self.epsilon, exponential_avg_factor=1.0,
          data_format="NHWC", is_training=False)
    return tf.cast(outputs, self.compute_dtype)
