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

This module holds what both share (opening a container, `probe`, the
timeline, `MediaError`, the file extensions); `l3_tf.data.media_audio`
decodes sound, `l3_tf.data.media_video` frames and whole stored videos.

Audio is downmixed to mono by averaging the channels and resampled in NumPy
(`resample`, a polyphase FIR). Every failure raises `MediaError` with the path
and a short reason, which the builders' skip reports record.
"""

import dataclasses
import os
from collections.abc import Iterator

import av

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


def open_container(path) -> av.container.InputContainer:
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


def container_info(path, container) -> MediaInfo:
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
  with open_container(path) as container:
    return container_info(path, container)


def start_seconds(container) -> float:
  """Time 0 of the shared timeline: the container's start time."""
  if container.start_time is not None:
    return container.start_time / av.time_base
  starts = [float(s.start_time * s.time_base) for s in container.streams
            if s.start_time is not None and s.time_base is not None]
  return min(starts) if starts else 0.0


def decode_packets(path, container, streams,
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
