"""Waveform -> log-spectrogram, the input of the L3 audio tower (tf.signal).

A pure tensor-in/tensor-out op: it runs eagerly, inside `tf.function` and
inside `tf.data.Dataset.map`. `l3_tf.data.audio_reference` is its NumPy twin.
"""

import tensorflow as tf

from l3_tf.data import audio_params as audio_params_lib


def check_sample_rate(sample_rate_hz: int,
                      params: audio_params_lib.AudioParams) -> None:
  if int(sample_rate_hz) != params.sample_rate_hz:
    raise ValueError(
        f"sample_rate_hz={sample_rate_hz} but the model expects "
        f"{params.sample_rate_hz}; resample first (l3_tf.data.media_audio.resample)")


def log_spectrogram(
    waveform: tf.Tensor,
    params: audio_params_lib.AudioParams = audio_params_lib.DEFAULT,
    sample_rate_hz: int | None = None,
) -> tf.Tensor:
  """Computes the L3 log-magnitude spectrogram of 1-second clips.

  Args:
    waveform: float32 `[batch, 48000]` in [-1, 1], mono, at
      `params.sample_rate_hz`.
    params: the front-end constants.
    sample_rate_hz: if given, the caller's rate, checked against the params.

  Returns:
    float32 `[batch, 257, 199, 1]`: frequency bins x time frames x 1.

  Raises:
    ValueError: wrong rank, length, dtype or sample rate.
  """
  if sample_rate_hz is not None:
    check_sample_rate(sample_rate_hz, params)
  waveform = tf.convert_to_tensor(waveform)
  if waveform.dtype != tf.float32:
    raise ValueError(f"waveform dtype={waveform.dtype.name} but the front end "
                     "expects float32 samples in [-1, 1]")
  if waveform.shape.rank != 2:
    raise ValueError(
        f"waveform shape={waveform.shape} (rank {waveform.shape.rank}) but "
        f"the front end expects [batch, {params.clip_samples}]")
  length = waveform.shape[1]
  if length is not None and length != params.clip_samples:
    raise ValueError(
        f"waveform length={length} samples but the front end expects "
        f"{params.clip_samples} ({params.clip_seconds} s at "
        f"{params.sample_rate_hz} Hz)")
  if length is None:
    tf.debugging.assert_equal(
        tf.shape(waveform)[1], params.clip_samples,
        message=f"waveform length must be {params.clip_samples} samples")
    waveform = tf.ensure_shape(waveform, [None, params.clip_samples])

  stft = tf.signal.stft(
      waveform,
      frame_length=params.window_length_samples,
      frame_step=params.hop_length_samples,
      fft_length=params.fft_length,
      window_fn=tf.signal.hann_window,  # periodic Hann
      pad_end=False)  # [batch, 199, 257] complex64
  magnitude = tf.abs(stft)  # [batch, 199, 257]
  log_mag = params.log_scale * tf.math.log(magnitude + params.log_offset)
  spec = tf.transpose(log_mag, [0, 2, 1])  # [batch, 257, 199]
  return spec[..., tf.newaxis]  # [batch, 257, 199, 1]
