"""The tf.signal front end against its NumPy reference, and its errors."""

import numpy as np
import pytest
import tensorflow as tf

from l3_tf.data import audio_frontend
from l3_tf.data import audio_params as audio_params_lib
from l3_tf.data import audio_reference
from tests import testing

PARAMS = audio_params_lib.DEFAULT


def _signals():
  t = np.arange(PARAMS.clip_samples) / PARAMS.sample_rate_hz
  rng = np.random.default_rng(1234)
  return {
      "zeros": np.zeros((2, PARAMS.clip_samples)),
      "noise": rng.uniform(-1, 1, (2, PARAMS.clip_samples)),
      "sine_1khz": np.stack([np.sin(2 * np.pi * 1000 * t),
                             0.01 * np.sin(2 * np.pi * 1000 * t)]),
  }


def test_derived_sizes():
  # 512 / 2 + 1 bins; 1 + (48000 - 480) // 240 frames.
  assert PARAMS.num_bins == 257
  assert PARAMS.num_frames == 199
  assert PARAMS.window_length_samples == 480
  assert PARAMS.hop_length_samples == 240
  assert PARAMS.spectrogram_shape == (257, 199, 1)


@pytest.mark.parametrize("name", ["zeros", "noise", "sine_1khz"])
def test_matches_numpy_reference(name):
  waveform = _signals()[name].astype(np.float32)
  got = audio_frontend.log_spectrogram(tf.constant(waveform), PARAMS).numpy()
  want = audio_reference.log_spectrogram(
      waveform, sample_rate_hz=PARAMS.sample_rate_hz,
      window_seconds=PARAMS.window_seconds, hop_seconds=PARAMS.hop_seconds,
      fft_length=PARAMS.fft_length, log_offset=PARAMS.log_offset,
      log_scale=PARAMS.log_scale)
  assert got.shape == want.shape == (2, 257, 199, 1)
  assert np.all(np.isfinite(got))
  # Known difference: the TF op runs in float32, the reference in float64;
  # within the FFT's round-off bound, element by element (the log offset
  # bounds how much of it shows in empty bins).
  bound = testing.log_spectrogram_error_bound(waveform, want, PARAMS)
  np.testing.assert_array_less(np.abs(got - want), bound)


def test_zeros_are_finite_floor():
  spec = audio_frontend.log_spectrogram(tf.zeros((1, 48000)), PARAMS).numpy()
  # Exactly log(0 + offset) but for the offset's float32 rounding (u / |log
  # offset| relative) and the float32 log's own (2 ulp allowed): 4 u.
  np.testing.assert_allclose(spec, np.log(PARAMS.log_offset),
                             rtol=4 * 2.0**-24)


def test_sine_peaks_in_bin_11():
  spec = audio_frontend.log_spectrogram(
      tf.constant(_signals()["sine_1khz"], tf.float32), PARAMS).numpy()
  # 1000 Hz / (48000 / 512 = 93.75 Hz per bin) = 10.67 -> bin 11.
  expected_bin = round(1000 / PARAMS.bin_hz)
  assert expected_bin == 11
  peak_bins = spec[:, :, :, 0].argmax(axis=1)  # [2, 199]
  assert np.all(peak_bins == expected_bin)


def test_inside_dataset_map_equals_eager():
  waveform = _signals()["noise"].astype(np.float32)
  eager = audio_frontend.log_spectrogram(tf.constant(waveform)).numpy()
  ds = tf.data.Dataset.from_tensor_slices(waveform).batch(2).map(
      audio_frontend.log_spectrogram)
  mapped = next(iter(ds)).numpy()
  # Each within the float32 bound of the float64 spectrogram.
  bound = testing.log_spectrogram_error_bound(
      waveform, audio_reference.log_spectrogram(waveform), PARAMS)
  np.testing.assert_array_less(np.abs(mapped - eager), 2 * bound)


@pytest.mark.parametrize("waveform, message", [
    (np.zeros((1, 47999), np.float32), "length=47999"),
    (np.zeros((48000,), np.float32), "rank 1"),
    (np.zeros((1, 1, 48000), np.float32), "rank 3"),
    (np.zeros((1, 48000), np.float64), "dtype=float64"),
    (np.zeros((1, 48000), np.int16), "dtype=int16"),
])
def test_bad_input_is_named(waveform, message):
  with pytest.raises(ValueError, match=message):
    audio_frontend.log_spectrogram(waveform)


def test_wrong_sample_rate_is_named():
  with pytest.raises(ValueError, match="sample_rate_hz=44100"):
    audio_frontend.log_spectrogram(tf.zeros((1, 48000)), sample_rate_hz=44100)


def test_bad_params_rejected():
  with pytest.raises(ValueError, match="log_offset"):
    audio_params_lib.AudioParams(log_offset=0.0)
  with pytest.raises(ValueError, match="fft_length=256"):
    audio_params_lib.AudioParams(fft_length=256)
