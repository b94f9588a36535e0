"""Audio decoding with PyAV: any file FFmpeg reads -> a mono float32 waveform.

On `l3_tf.data.media`'s timeline (sample `i` plays at `i / sample_rate_hz`
of the container's clock). Channels are averaged; the rate is changed in
NumPy (`resample`, a polyphase FIR).
"""

import fractions
import os

import av
import numpy as np
from scipy import signal

from l3_tf.data import media

# Decoded audio frames arrive in whatever sample format the codec uses.
_INT_SCALE = {"s16": 32768.0, "s16p": 32768.0, "s32": 2147483648.0,
              "s32p": 2147483648.0, "s64": 9223372036854775808.0,
              "s64p": 9223372036854775808.0}


# Decoded audio longer than the stream's declared duration by at most this is
# encoder padding and is cut; a larger excess means the declared duration is
# wrong, and the decoded samples are kept.
_MAX_END_PADDING_SECONDS = 0.1


def resample(waveform: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
  """Resamples along the last axis with a polyphase FIR (scipy resample_poly).

  The ratio is reduced exactly (44100 -> 48000 is up 160, down 147); the
  Kaiser-windowed anti-aliasing filter attenuates images by > 80 dB outside
  the pass band. About 1000x real time on one core from any common rate to
  48 kHz, max error 5e-5 on a 1 kHz sine (`benchmarks/resample.py`).

  Args:
    waveform: float array [..., n].
    rate_in: its sample rate, Hz.
    rate_out: the wanted rate, Hz.

  Returns:
    float32 [..., round(n * rate_out / rate_in)].
  """
  if rate_in <= 0 or rate_out <= 0:
    raise ValueError(f"rates must be positive: rate_in={rate_in}, "
                     f"rate_out={rate_out}")
  waveform = np.asarray(waveform, dtype=np.float32)
  if rate_in == rate_out:
    return waveform
  ratio = fractions.Fraction(int(rate_out), int(rate_in))
  n_out = int(round(waveform.shape[-1] * rate_out / rate_in))
  if waveform.shape[-1] == 0:
    return np.zeros(waveform.shape[:-1] + (0,), np.float32)
  out = signal.resample_poly(waveform, ratio.numerator, ratio.denominator,
                             axis=-1, window=("kaiser", 8.0))
  return out[..., :n_out].astype(np.float32, copy=False)


def _audio_frame_channels(frame: av.AudioFrame) -> np.ndarray:
  """One decoded audio frame -> float32 [channels, samples] in [-1, 1]."""
  data = frame.to_ndarray()
  name = frame.format.name
  if not frame.format.is_planar:  # interleaved: [1, samples * channels]
    data = data.reshape(-1, frame.layout.nb_channels).T
  if name in _INT_SCALE:
    return data.astype(np.float32) / _INT_SCALE[name]
  if name in ("u8", "u8p"):
    return (data.astype(np.float32) - 128.0) / 128.0
  return data.astype(np.float32, copy=False)  # flt, fltp, dbl, dblp


class AudioAccumulator:
  """Collects decoded audio frames into one mono waveform on the timeline."""

  def __init__(self, path, origin: float, stream=None):
    self.path = path
    self.origin = origin
    # The declared end of the stream, when the container knows it: encoders
    # pad the last codec frame (AAC: up to 1023 samples) and the mp4 edit
    # list that trims it is not applied by the decoder.
    self.declared_end = None
    if stream is not None and stream.duration and stream.time_base:
      start = float(stream.start_time * stream.time_base) if (
          stream.start_time is not None) else origin
      self.declared_end = start + float(stream.duration * stream.time_base) - origin
    self.rate = None
    self.chunks = []
    self.first_time = None
    self.num_samples = 0

  def add(self, frame: av.AudioFrame):
    if frame.samples == 0:
      return
    if self.rate is None:
      self.rate = frame.sample_rate
      self.first_time = (frame.time - self.origin if frame.time is not None
                         else 0.0)
    elif frame.sample_rate != self.rate:
      raise media.MediaError(self.path, f"audio sample rate changes mid-stream "
                       f"({self.rate} -> {frame.sample_rate} Hz)")
    chunk = _audio_frame_channels(frame)  # [channels, samples]
    self.chunks.append(chunk)
    self.num_samples += chunk.shape[1]

  @property
  def end_seconds(self) -> float:
    """End of the audio decoded so far on the timeline."""
    if self.rate is None:
      return 0.0
    return self.first_time + self.num_samples / self.rate

  def waveform(self, rate_out: int) -> np.ndarray:
    """float32 [n] at rate_out with sample 0 at time 0."""
    if self.rate is None:
      return np.zeros([0], np.float32)
    if len({chunk.shape[0] for chunk in self.chunks}) == 1:
      mono = np.concatenate(self.chunks, axis=1).mean(axis=0)
    else:  # the channel layout changes mid-stream
      mono = np.concatenate([chunk.mean(axis=0) for chunk in self.chunks])
    audio = resample(mono, self.rate, rate_out)
    offset = int(round(self.first_time * rate_out))
    if offset > 0:  # audio starts late: silence before it
      audio = np.concatenate([np.zeros([offset], np.float32), audio])
    elif offset < 0:  # audio before time 0 (e.g. encoder priming)
      audio = audio[-offset:]
    if self.declared_end is not None:
      excess = audio.shape[0] - int(round(self.declared_end * rate_out))
      if 0 < excess <= _MAX_END_PADDING_SECONDS * rate_out:
        audio = audio[:audio.shape[0] - excess]
    return audio


def load_audio(path: str | os.PathLike,
               sample_rate_hz: int = media.SAMPLE_RATE_HZ,
               max_seconds: float | None = None) -> np.ndarray:
  """Decodes the first audio stream of any file FFmpeg reads.

  Args:
    path: an audio file (wav, flac, ogg, mp3, ...) or a video with sound
      (mp4/aac, webm/vorbis, avi/mp3, ...).
    sample_rate_hz: the rate to resample to.
    max_seconds: keep only the first this many seconds (None: all).

  Returns:
    float32 [n] mono (channels averaged) in [-1, 1] at sample_rate_hz; sample
    0 is time 0 of the container.

  Raises:
    media.MediaError: missing, empty or unreadable file, no audio stream, a decoding
      error, or no decodable audio.
  """
  with media.open_container(path) as container:
    if not container.streams.audio:
      raise media.MediaError(path, "no audio stream")
    stream = container.streams.audio[0]
    accumulator = AudioAccumulator(path, media.start_seconds(container), stream)
    for frame in media.decode_packets(path, container, [stream]):
      accumulator.add(frame)
      if max_seconds is not None and accumulator.end_seconds >= max_seconds:
        break
  if accumulator.num_samples == 0:
    raise media.MediaError(path, "the audio stream has no decodable samples")
  audio = accumulator.waveform(sample_rate_hz)
  if max_seconds is not None:
    audio = audio[:int(round(max_seconds * sample_rate_hz))]
  return audio
