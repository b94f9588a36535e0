"""Pure-NumPy reference of `l3_tf.data.audio_frontend.log_spectrogram`.

Every knob is a keyword argument so that a reader can see the whole
computation in one place; `tests/audio_frontend_test.py` checks the two agree.
Computed in float64, so the measured difference is the TF op's float32 error.
"""

import numpy as np


def periodic_hann(window_length: int) -> np.ndarray:
  """Periodic Hann window, as `tf.signal.hann_window(periodic=True)`."""
  n = np.arange(window_length)
  return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / window_length)


def log_spectrogram(waveform: np.ndarray,
                    *,
                    sample_rate_hz: int = 48000,
                    window_seconds: float = 0.01,
                    hop_seconds: float = 0.005,
                    fft_length: int = 512,
                    log_offset: float = 0.01,
                    log_scale: float = 1.0) -> np.ndarray:
  """Log-magnitude STFT of `waveform` `[batch, samples]` -> `[batch, bins, frames, 1]`.

  Frames start at 0, hop, 2*hop, ... and the last frame ends inside the clip
  (no end padding); each frame is multiplied by a periodic Hann window and
  zero-padded at its end to `fft_length` before the real FFT.
  """
  waveform = np.asarray(waveform, dtype=np.float64)
  if waveform.ndim != 2:
    raise ValueError(f"waveform shape={waveform.shape}: expected [batch, samples]")
  window_length = int(round(window_seconds * sample_rate_hz))
  hop_length = int(round(hop_seconds * sample_rate_hz))
  num_frames = 1 + (waveform.shape[1] - window_length) // hop_length
  starts = hop_length * np.arange(num_frames)
  index = starts[:, None] + np.arange(window_length)[None, :]  # [frames, window]
  frames = waveform[:, index] * periodic_hann(window_length)  # [batch, frames, window]
  magnitude = np.abs(np.fft.rfft(frames, n=fft_length, axis=-1))  # [batch, frames, bins]
  log_mag = log_scale * np.log(magnitude + log_offset)
  return np.transpose(log_mag, (0, 2, 1))[..., None]  # [batch, bins, frames, 1]
