"""Decoding of audio and video files with PyAV (any container FFmpeg reads).

The one place where media files become arrays. Dataset builders
(`data_prep/`) decode whole videos into the stored example of
`l3_tf.data.video_example`; the embedding tools decode audio files, videos and the
frames shown at given times. Everything shares one timeline:

  * time 0 is the container's start time (its earliest stream start), so a
    file whose streams start late, or MPEG-TS with an arbitrary clock, is
    shifted to start at 0;
  * audio sample `i` of a returned waveform plays at `i / sample_rate_hz`
    (leading audio before time 0 is dropped, a late audio start is padded with
    silence), and a frame time is its presentation timestamp on that clock.

Audio is downmixed to mono by averaging the channels and resampled in NumPy
(`resample`, a polyphase FIR). Every failure raises `MediaError` with the path
and a short reason, which the builders' skip reports record.
"""

import dataclasses
import fractions
import io
import math
import os
from collections.abc import Iterator, Sequence

import av
import av.video.reformatter
import numpy as np
from PIL import Image
from scipy import signal

from l3_tf.data import audio_params
from l3_tf.platform import compat

SAMPLE_RATE_HZ = audio_params.DEFAULT.sample_rate_hz
# The stored video contract's defaults (l3_tf.data.video_example, which imports
# TensorFlow; this module must not, so that decoding workers stay light).
# media_test checks that both agree.
DEFAULT_FRAMES_PER_SECOND = 4.0
DEFAULT_MAX_SECONDS = 10.0
SHORT_SIDE = 256
JPEG_QUALITY = 90

# File extensions taken for media when listing folders (dataset builders,
# embedding tools); FFmpeg reads them all. Anything else is a side file.
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv",
                    ".wmv", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".3gp",
                    ".ogv", ".vob", ".mxf", ".asf", ".divx")
AUDIO_EXTENSIONS = (".wav", ".ogg", ".oga", ".flac", ".mp3", ".m4a", ".aac",
                    ".opus", ".aif", ".aiff", ".au", ".wma")

# Decoded audio frames arrive in whatever sample format the codec uses.
_INT_SCALE = {"s16": 32768.0, "s16p": 32768.0, "s32": 2147483648.0,
              "s32p": 2147483648.0, "s64": 9223372036854775808.0,
              "s64p": 9223372036854775808.0}


# Decoded audio longer than the stream's declared duration by at most this is
# encoder padding and is cut; a larger excess means the declared duration is
# wrong, and the decoded samples are kept.
_MAX_END_PADDING_SECONDS = 0.1


class MediaError(ValueError):
  """A media file that cannot be used, with the reason.

  Attributes:
    path: the offending file.
    reason: a short human-readable reason ("no audio stream", ...); skip
      reports record it verbatim.
  """

  def __init__(self, path: str | os.PathLike, reason: str):
    self.path = os.fspath(path)
    self.reason = reason
    super().__init__(f"{self.path}: {reason}")


@dataclasses.dataclass(frozen=True)
class MediaInfo:
  """What `probe` reads from the container headers (nothing is decoded).

  Attributes:
    path: the probed file.
    duration_seconds: the container's duration (None when unknown, e.g. some
      streamed webm files).
    has_audio / has_video: whether the container has such a stream.
    sample_rate_hz / num_channels: of the first audio stream (0 if none).
    width / height / frames_per_second: of the first video stream (0 if none;
      frames_per_second is the average rate, 0 when unknown).
    audio_codec / video_codec: FFmpeg codec names ("" if none).
  """

  path: str
  duration_seconds: float | None
  has_audio: bool
  has_video: bool
  sample_rate_hz: int = 0
  num_channels: int = 0
  width: int = 0
  height: int = 0
  frames_per_second: float = 0.0
  audio_codec: str = ""
  video_codec: str = ""


@dataclasses.dataclass(frozen=True)
class DecodeOptions:
  """How `decode_video` samples a video.

  Attributes:
    frames_per_second: frame sampling rate. For each time k / rate the frame
      displayed then is kept (each distinct frame once). 4 fps: see
      `l3_tf.data.video_example.DEFAULT_FRAMES_PER_SECOND`.
    max_seconds: keep only the first this many seconds; None keeps all.
    short_side: frames are resized so min(height, width) is this (aspect
      kept, long side rounded); None keeps the decoded size.
    jpeg_quality: JPEG quality of the stored frames (1-95).
    sample_rate_hz: audio is resampled to this rate.
    decoder_threads: FFmpeg decoder threads per video; 1 is the most
      efficient per core (run several videos in parallel instead).
    skip_unneeded_frames: let the decoder drop non-reference frames (which
      no other frame is predicted from) unless one may be displayed at a
      sample time: a frame at time t is kept if the next sample time is less
      than two nominal frame periods after t. Saves about a sixth of the
      per-video CPU on the real av_clips (`benchmarks/build_videos.py`:
      stage decode 4.05 s vs exact 4.88 s). Every stored frame time stays
      exact; only in a variable-frame-rate video whose frame is shown for
      more than two nominal periods can a sample time get the frame before
      the displayed one. Only for codecs with reliable timestamps (H.264,
      HEVC, VP8/9, AV1, MPEG-2); `frames_at` never skips.
  """

  frames_per_second: float = DEFAULT_FRAMES_PER_SECOND
  max_seconds: float | None = DEFAULT_MAX_SECONDS
  short_side: int | None = SHORT_SIDE
  jpeg_quality: int = JPEG_QUALITY
  sample_rate_hz: int = SAMPLE_RATE_HZ
  decoder_threads: int = 1
  skip_unneeded_frames: bool = True

  def __post_init__(self):
    if not self.frames_per_second > 0:
      raise ValueError(
          f"frames_per_second={self.frames_per_second}: expected > 0")
    if self.max_seconds is not None and not self.max_seconds > 0:
      raise ValueError(
          f"max_seconds={self.max_seconds}: expected > 0 or None (all)")
    if self.short_side is not None and self.short_side < 1:
      raise ValueError(f"short_side={self.short_side}: expected >= 1 or None")
    if not 1 <= self.jpeg_quality <= 95:
      raise ValueError(f"jpeg_quality={self.jpeg_quality}: expected 1..95")
    if self.sample_rate_hz < 1:
      raise ValueError(f"sample_rate_hz={self.sample_rate_hz}: expected > 0")


@dataclasses.dataclass
class DecodedVideo:
  """One decoded video on the shared timeline (see the module docstring).

  Attributes:
    frames: JPEG bytes of the kept frames, in time order.
    frame_times: float32 [num_frames] presentation time of each frame, s,
      strictly increasing and < duration_seconds.
    audio: float32 [num_samples] mono at sample_rate_hz,
      num_samples == round(duration_seconds * sample_rate_hz).
    sample_rate_hz: rate of `audio`.
    duration_seconds: the kept part: min(max_seconds, end of the audio, end
      of the video).
    frame_height / frame_width: size of the stored frames.
    source: what the container headers say (`probe`).
    audio_peak: max |sample| of the kept audio before any clipping (0 for
      digital silence).
  """

  frames: list[bytes]
  frame_times: np.ndarray
  audio: np.ndarray
  sample_rate_hz: int
  duration_seconds: float
  frame_height: int
  frame_width: int
  source: MediaInfo
  audio_peak: float


def _open(path) -> av.container.InputContainer:
  """Opens `path` for reading, mapping every failure to MediaError."""
  path = os.fspath(path)
  try:
    size = os.path.getsize(path)
  except OSError as e:
    raise MediaError(path, f"cannot read the file ({e.strerror})") from e
  if size == 0:
    raise MediaError(path, "empty file (0 bytes)")
  try:
    return av.open(path, **compat.av_open_read_kwargs())
  except av.FFmpegError as e:
    raise MediaError(path, f"not a readable media file ({_ffmpeg_message(e)})") from e
  except (OSError, UnicodeDecodeError) as e:
    raise MediaError(path, f"not a readable media file ({e})") from e


def _ffmpeg_message(error: Exception) -> str:
  return getattr(error, "strerror", None) or str(error)


def _info(path, container) -> MediaInfo:
  audio = container.streams.audio[0] if container.streams.audio else None
  video = container.streams.video[0] if container.streams.video else None
  duration = (container.duration / av.time_base
              if container.duration is not None else None)
  kwargs = {}
  if audio is not None:
    kwargs.update(sample_rate_hz=int(audio.codec_context.sample_rate or 0),
                  num_channels=int(audio.codec_context.channels or 0),
                  audio_codec=audio.codec_context.name)
  if video is not None:
    rate = video.average_rate or video.guessed_rate
    kwargs.update(width=int(video.codec_context.width or 0),
                  height=int(video.codec_context.height or 0),
                  frames_per_second=float(rate) if rate else 0.0,
                  video_codec=video.codec_context.name)
  return MediaInfo(path=os.fspath(path), duration_seconds=duration,
                   has_audio=audio is not None, has_video=video is not None,
                   **kwargs)


def probe(path: str | os.PathLike) -> MediaInfo:
  """Reads the container headers: duration, streams, rates, sizes.

  Cheap: no packet is decoded.

  Raises:
    MediaError: the file is missing, empty or not a media file.
  """
  with _open(path) as container:
    return _info(path, container)


def _start_seconds(container) -> float:
  """Time 0 of the shared timeline: the container's start time."""
  if container.start_time is not None:
    return container.start_time / av.time_base
  starts = [float(s.start_time * s.time_base) for s in container.streams
            if s.start_time is not None and s.time_base is not None]
  return min(starts) if starts else 0.0


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


class _AudioAccumulator:
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
      raise MediaError(self.path, f"audio sample rate changes mid-stream "
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


def _decode_packets(path, container, streams,
                    skip=lambda stream: False,
                    before_decode=None) -> Iterator[av.frame.Frame]:
  """Demuxes `streams` and decodes their packets, except those `skip`s.

  `before_decode(packet)`, if given, runs before each packet is decoded.
  Decoder failures become MediaError naming the time of the bad packet.
  """
  packet = None
  try:
    for packet in container.demux(*streams):
      if skip(packet.stream):
        continue
      if before_decode is not None:
        before_decode(packet)
      for frame in packet.decode():
        yield frame
  except av.FFmpegError as e:
    where = ""
    if packet is not None and packet.pts is not None and packet.time_base:
      where = f" at {float(packet.pts * packet.time_base):.2f} s"
    raise MediaError(path, f"decoding failed{where} "
                     f"({_ffmpeg_message(e)})") from e


def load_audio(path: str | os.PathLike,
               sample_rate_hz: int = SAMPLE_RATE_HZ,
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
    MediaError: missing, empty or unreadable file, no audio stream, a decoding
      error, or no decodable audio.
  """
  with _open(path) as container:
    if not container.streams.audio:
      raise MediaError(path, "no audio stream")
    stream = container.streams.audio[0]
    accumulator = _AudioAccumulator(path, _start_seconds(container), stream)
    for frame in _decode_packets(path, container, [stream]):
      accumulator.add(frame)
      if max_seconds is not None and accumulator.end_seconds >= max_seconds:
        break
  if accumulator.num_samples == 0:
    raise MediaError(path, "the audio stream has no decodable samples")
  audio = accumulator.waveform(sample_rate_hz)
  if max_seconds is not None:
    audio = audio[:int(round(max_seconds * sample_rate_hz))]
  return audio


def resized_size(height: int, width: int, short_side: int) -> tuple[int, int]:
  """(new_height, new_width) with min == short_side, aspect kept.

  Rounds the long side like `l3_tf.data.image_ops.short_side_size` (odd sizes
  are fine: JPEG and swscale take any size).
  """
  scale = short_side / min(height, width)
  return (max(short_side, int(round(height * scale))),
          max(short_side, int(round(width * scale))))


def _rotation_steps(frame: av.VideoFrame) -> int:
  """Quarter turns (counter-clockwise) needed to display the frame upright."""
  rotation = getattr(frame, "rotation", 0) or 0
  return int(round(rotation / 90.0)) % 4


class _RgbConverter:
  """Decoded frames -> uint8 [h, w, 3] upright, short side resized.

  Scales in the frame's own pixel format first (AREA when shrinking), then
  converts the small frame to RGB: 2.5-3x faster than one swscale call doing
  both (which filters full-resolution chroma into RGB), for a mean
  difference of about 1 grey level at colour edges (chroma stays 4:2:0 until
  the conversion, as the JPEG stores it anyway). One converter per decode
  call: the swscale contexts it caches are not thread-safe.
  """

  def __init__(self, short_side: int | None):
    self.short_side = short_side
    self.scaler = av.video.reformatter.VideoReformatter()
    self.to_rgb = av.video.reformatter.VideoReformatter()

  def __call__(self, frame: av.VideoFrame) -> np.ndarray:
    steps = _rotation_steps(frame)
    if self.short_side is not None:
      # The rotation swaps the axes; the resize does not care which is which.
      height, width = resized_size(frame.height, frame.width, self.short_side)
      shrink = min(frame.height, frame.width) > self.short_side
      try:
        frame = self.scaler.reformat(
            frame, width=width, height=height, format=frame.format.name,
            interpolation="AREA" if shrink else "BICUBIC")
      except (ValueError, av.FFmpegError):  # a format swscale cannot write
        frame = self.scaler.reformat(
            frame, width=width, height=height, format="rgb24",
            interpolation="AREA" if shrink else "BICUBIC")
    frame = self.to_rgb.reformat(frame, format="rgb24")
    # to_ndarray is a view with padded rows; one contiguous copy here makes
    # everything downstream (PIL, np.stack) an order of magnitude faster.
    image = frame.to_ndarray(format="rgb24")
    if steps:
      image = np.rot90(image, k=steps)
    return np.ascontiguousarray(image)  # [h, w, 3]


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
  """uint8 [h, w, 3] -> JPEG bytes (4:2:0, baseline: what TF decodes)."""
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
  return buffer.getvalue()


def _frame_end(frame: av.VideoFrame, time: float, stream) -> float:
  """The time at which `frame` stops being displayed."""
  if frame.duration and frame.time_base is not None:
    return time + frame.duration * float(frame.time_base)
  rate = stream.average_rate or stream.guessed_rate
  return time + (1.0 / float(rate) if rate else 0.0)


# Codecs whose timestamps do not depend on which frames are decoded. Not
# MPEG-4 part 2: with "packed B-frames" (DivX-style AVI) FFmpeg guesses the
# timestamps, and dropping frames changes the guess.
_SKIP_SAFE_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1",
                               "mpeg2video"})


class _NeededFrames:
  """Sets the video decoder to drop a non-reference frame nobody will see.

  Called with each packet before it is decoded (decode order); decides from
  its presentation time whether its frame may be displayed at a sample time.
  Reference frames are always decoded (`skip_frame` NONREF only drops
  frames no other frame depends on), so what is decoded stays exact.
  """

  def __init__(self, video, origin: float, frames_per_second: float):
    self.video = video
    self.origin = origin
    self.rate = frames_per_second
    nominal = video.average_rate or video.guessed_rate
    self.margin = 2.0 / float(nominal) if nominal else math.inf
    self.time_base = float(video.time_base) if video.time_base else None
    self.skipping = False

  def __call__(self, packet):
    if packet.stream.index != self.video.index:
      return
    needed = True
    if packet.pts is not None and self.time_base:
      time = packet.pts * self.time_base - self.origin
      next_sample = math.ceil(time * self.rate - 1e-6) / self.rate
      needed = next_sample - time < self.margin
    if needed == self.skipping:  # only touch the decoder on a change
      self.video.codec_context.skip_frame = "DEFAULT" if needed else "NONREF"
      self.skipping = not needed


class _FrameSelector:
  """Picks, for sample times k / rate, the frame displayed at each time.

  The frame displayed at t is the last frame whose time is <= t (the first
  frame for times before it). Each distinct frame is kept once, so a source
  slower than the sampling rate yields fewer frames, never duplicates.
  """

  def __init__(self, rate: float):
    self.rate = rate
    self.next_index = 0  # next sample time is next_index / rate
    self.previous = None  # (time, frame) of the last decoded frame
    self.previous_kept = False

  def _next_time(self) -> float:
    return self.next_index / self.rate

  def add(self, time: float, frame) -> list[tuple[float, object]]:
    """Feeds the next decoded frame; returns the frames now known to be kept."""
    kept = []
    if self.previous is None:
      # Sample times before the first frame show the first frame.
      self.previous = (time, frame)
      self.previous_kept = False
      while self._next_time() <= time:
        if not self.previous_kept:
          kept.append(self.previous)
          self.previous_kept = True
        self.next_index += 1
      return kept
    # Sample times in [previous time, this time) show the previous frame.
    while self._next_time() < time:
      if not self.previous_kept:
        kept.append(self.previous)
        self.previous_kept = True
      self.next_index += 1
    self.previous = (time, frame)
    self.previous_kept = False
    if self._next_time() <= time:  # a sample time hits this frame exactly
      kept.append(self.previous)
      self.previous_kept = True
      self.next_index += 1
      while self._next_time() <= time:
        self.next_index += 1
    return kept

  def finish(self, end: float) -> list[tuple[float, object]]:
    """The last frame, if a sample time before `end` shows it."""
    if (self.previous is not None and not self.previous_kept and
        self._next_time() < end):
      self.previous_kept = True
      return [self.previous]
    return []


def _frame_time(frame: av.VideoFrame, origin: float, last: float | None,
                stream) -> float:
  if frame.time is not None:
    return frame.time - origin
  # No timestamp (some AVI): one frame period after the previous frame.
  rate = stream.average_rate or stream.guessed_rate
  period = 1.0 / float(rate) if rate else 0.04
  return 0.0 if last is None else last + period


def decode_video(path: str | os.PathLike,
                 options: DecodeOptions = DecodeOptions()) -> DecodedVideo:
  """Decodes a video into sampled JPEG frames and 48 kHz mono audio.

  One pass over the file: packets of the first video and audio streams are
  demuxed together and decoding stops once both reach `max_seconds`. Only
  the sampled frames are converted to RGB, resized and JPEG-encoded.

  Args:
    path: any video file FFmpeg reads.
    options: sampling rate, length limit, frame size, JPEG quality.

  Returns:
    The DecodedVideo; its duration is min(max_seconds, audio end, video end)
    and its frames and audio are cut to it.

  Raises:
    MediaError: missing, empty or unreadable file, no video or no audio
      stream, a decoding error, or no decodable frame / sample.
  """
  path = os.fspath(path)
  with _open(path) as container:
    info = _info(path, container)
    if not container.streams.video:
      raise MediaError(path, "no video stream")
    if not container.streams.audio:
      raise MediaError(path, "no audio stream")
    video = container.streams.video[0]
    audio = container.streams.audio[0]
    if options.decoder_threads > 1:
      video.thread_type = "AUTO"
      video.codec_context.thread_count = options.decoder_threads
    else:
      video.codec_context.thread_count = 1
    origin = _start_seconds(container)
    limit = options.max_seconds if options.max_seconds is not None else math.inf
    accumulator = _AudioAccumulator(path, origin, audio)
    selector = _FrameSelector(options.frames_per_second)
    kept = []  # (time, JPEG bytes, [height, width])
    video_end = None
    last_time = None
    done = {video.index: False, audio.index: False}

    to_rgb = _RgbConverter(options.short_side)

    def keep(selected):
      for time, frame in selected:
        image = to_rgb(frame)  # [h, w, 3]
        kept.append((time, encode_jpeg(image, options.jpeg_quality),
                     image.shape[:2]))

    before_decode = None
    if (options.skip_unneeded_frames and
        video.codec_context.name in _SKIP_SAFE_CODECS):
      before_decode = _NeededFrames(video, origin, options.frames_per_second)
    for frame in _decode_packets(path, container, [video, audio],
                                 skip=lambda stream: done[stream.index],
                                 before_decode=before_decode):
      if isinstance(frame, av.AudioFrame):
        accumulator.add(frame)
        done[audio.index] = accumulator.end_seconds >= limit
      else:
        time = _frame_time(frame, origin, last_time, video)
        if last_time is not None and time <= last_time:
          continue  # duplicate or out-of-order timestamp: keep the first
        last_time = time
        video_end = _frame_end(frame, time, video)
        if time >= limit:
          done[video.index] = True
        else:
          keep(selector.add(time, frame))
      if done[video.index] and done[audio.index]:
        break
  if video_end is None:
    raise MediaError(path, "the video stream has no decodable frames")
  if accumulator.num_samples == 0:
    raise MediaError(path, "the audio stream has no decodable samples")
  rate = options.sample_rate_hz
  waveform = accumulator.waveform(rate)
  duration = min(limit, video_end, waveform.shape[0] / rate)
  keep(selector.finish(duration))
  waveform = waveform[:int(round(duration * rate))]
  kept = [item for item in kept if item[0] < duration]
  if not kept:
    raise MediaError(path, f"no frame before the end of the audio "
                     f"({duration:.3f} s)")
  frame_height, frame_width = kept[0][2]
  return DecodedVideo(
      frames=[jpeg for _, jpeg, _ in kept],
      frame_times=np.array([time for time, _, _ in kept], np.float32),
      audio=waveform,
      sample_rate_hz=rate,
      duration_seconds=float(duration),
      frame_height=int(frame_height),
      frame_width=int(frame_width),
      source=info,
      audio_peak=float(np.max(np.abs(waveform))) if waveform.size else 0.0)


# frames_at seeks (to the keyframe before its earliest time) only past this:
# short seeks save little and some files have unreliable indexes.
_SEEK_AFTER_SECONDS = 4.0


def _select_frames(path, container, video, origin: float,
                   sorted_times: np.ndarray, short_side: int | None,
                   require_start: bool):
  """RGB images of the frames displayed at sorted_times (sorted order).

  Each selected frame is converted once, when it is known to be selected, so
  no decoded frame is held longer than needed. With require_start, returns
  None if the first decoded frame comes after sorted_times[0] (a seek that
  overshot).
  """
  selected = []
  previous = None  # (frame, rgb or None)
  last_time = None
  to_rgb = _RgbConverter(short_side)

  def rgb_of(entry):
    if entry[1] is None:
      entry[1] = to_rgb(entry[0])
    return entry[1]

  for frame in _decode_packets(path, container, [video]):
    time = _frame_time(frame, origin, last_time, video)
    if last_time is not None and time <= last_time:
      continue
    if last_time is None and require_start and time > sorted_times[0]:
      return None
    last_time = time
    current = [frame, None]
    # Times before this frame show the previous one (the first frame for
    # times before every frame).
    shown = previous if previous is not None else current
    while len(selected) < sorted_times.size and (
        sorted_times[len(selected)] < time):
      selected.append(rgb_of(shown))
    previous = current
    if len(selected) == sorted_times.size:
      break
  if previous is None:
    raise MediaError(path, "the video stream has no decodable frames")
  while len(selected) < sorted_times.size:  # after the last frame
    selected.append(rgb_of(previous))
  return selected


def frames_at(path: str | os.PathLike, times_seconds: Sequence[float],
              short_side: int | None = None) -> np.ndarray:
  """The frame displayed at each of the given times, for aligned embeddings.

  The frame displayed at t is the last frame whose presentation time is
  <= t on the shared timeline (the first frame for t before it, the last
  frame for t after the end). Decodes sequentially (from the keyframe before
  the earliest time when that is more than a few seconds in) and converts
  only the selected frames to RGB, each once.

  Args:
    path: a video file.
    times_seconds: times in seconds, any order, duplicates allowed.
    short_side: resize each frame so its short side is this (None: decoded
      size).

  Returns:
    uint8 [len(times), h, w, 3], in the order of `times_seconds`.

  Raises:
    MediaError: unreadable file, no video stream, a decoding error.
  """
  times = np.asarray(times_seconds, dtype=np.float64).reshape([-1])
  if times.size == 0:
    raise ValueError("times_seconds is empty: expected at least one time")
  if not np.all(np.isfinite(times)):
    raise ValueError(f"times_seconds={times.tolist()} must be finite")
  order = np.argsort(times, kind="stable")
  sorted_times = times[order]
  with _open(path) as container:
    if not container.streams.video:
      raise MediaError(path, "no video stream")
    video = container.streams.video[0]
    video.codec_context.thread_count = 1
    origin = _start_seconds(container)
    selected = None
    if sorted_times[0] > _SEEK_AFTER_SECONDS and video.time_base:
      # Jump to the keyframe before the earliest time. The result is kept
      # only if decoding restarts at or before that time (a bad index can
      # land later); otherwise decode from the start.
      try:
        container.seek(int((sorted_times[0] + origin) / video.time_base),
                       stream=video, backward=True, any_frame=False)
        selected = _select_frames(path, container, video, origin,
                                  sorted_times, short_side,
                                  require_start=True)
      except av.FFmpegError:
        selected = None
      if selected is None:
        container.seek(0, stream=video, backward=True, any_frame=False)
    if selected is None:
      selected = _select_frames(path, container, video, origin, sorted_times,
                                short_side, require_start=False)
  images = [None] * times.size
  for sorted_index, image in enumerate(selected):
    images[order[sorted_index]] = image
  return np.stack(images)  # [n, h, w, 3]
