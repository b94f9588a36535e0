"""The one home of the audio front-end constants (PAPER.md §2).

Every module that turns sound into the audio tower's input reads these values;
nothing else in the project hard-codes a sample rate, a window or an FFT size.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class AudioParams:
  """Log-spectrogram front end of the L3 audio tower.

  Attributes:
    sample_rate_hz: the rate every waveform is resampled to before the tower.
    clip_seconds: the length of one audio window fed to the tower.
    window_seconds: STFT window length (0.01 s = 480 samples at 48 kHz).
    hop_seconds: STFT hop (0.005 s = 240 samples at 48 kHz).
    fft_length: FFT size; each 480-sample frame is zero-padded to 512.
    log_offset: the constant added to the STFT magnitude before the natural
      log. The paper does not pin the compression. log(|X| + 0.01) keeps
      silence finite (log 0.01 = -4.6) with a floor ~82 dB below a full-scale
      sine (peak |X| ~ 120 with a 480-point Hann window). Smaller offsets
      amplify float32 FFT round-off in near-empty bins: against a float64
      reference, a 1 kHz sine differs by 1.29 (offset 1e-6), 0.052 (1e-4),
      0.0054 (1e-3) and 0.00054 (1e-2) in the log domain.
    log_scale: a fixed factor applied after the log (1.0: natural log).
  """

  sample_rate_hz: int = 48000
  clip_seconds: float = 1.0
  window_seconds: float = 0.01
  hop_seconds: float = 0.005
  fft_length: int = 512
  log_offset: float = 0.01
  log_scale: float = 1.0

  def __post_init__(self):
    if self.window_length_samples > self.fft_length:
      raise ValueError(
          f"window of {self.window_length_samples} samples does not fit "
          f"fft_length={self.fft_length}")
    if self.log_offset <= 0:
      raise ValueError(f"log_offset={self.log_offset} must be > 0 so that "
                       "silence maps to a finite value")

  @property
  def clip_samples(self) -> int:
    return int(round(self.clip_seconds * self.sample_rate_hz))

  @property
  def window_length_samples(self) -> int:
    return int(round(self.window_seconds * self.sample_rate_hz))

  @property
  def hop_length_samples(self) -> int:
    return int(round(self.hop_seconds * self.sample_rate_hz))

  @property
  def num_bins(self) -> int:
    return self.fft_length // 2 + 1

  @property
  def num_frames(self) -> int:
    return 1 + (self.clip_samples - self.window_length_samples) // (
        self.hop_length_samples)

  @property
  def bin_hz(self) -> float:
    """Width of one frequency bin (93.75 Hz at 48 kHz / 512)."""
    return self.sample_rate_hz / self.fft_length

  @property
  def spectrogram_shape(self) -> tuple[int, int, int]:
    """[bins, frames, channels] of one clip: (257, 199, 1)."""
    return (self.num_bins, self.num_frames, 1)


DEFAULT = AudioParams()
