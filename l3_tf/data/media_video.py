"""Video decoding with PyAV: frames at given times, and whole videos (frames
as JPEG plus their sound) for the stored examples of `l3_tf.data.video_example`.

On `l3_tf.data.media`'s timeline: a frame time is its presentation timestamp
on the container's clock, time 0 the container's start.
"""

import dataclasses
import io
import math
import os
from collections.abc import Sequence

import av
import av.video.reformatter
import numpy as np
from PIL import Image

from l3_tf.data import media
from l3_tf.data import media_audio

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

  frames_per_second: float = media.DEFAULT_FRAMES_PER_SECOND
  max_seconds: float | None = media.DEFAULT_MAX_SECONDS
  short_side: int | None = media.SHORT_SIDE
  jpeg_quality: int = media.JPEG_QUALITY
  sample_rate_hz: int = media.SAMPLE_RATE_HZ
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
    source: what the container headers say (`media.probe`).
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
  source: media.MediaInfo
  audio_peak: float


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


def encode_jpeg(image: np.ndarray, quality: int = media.JPEG_QUALITY) -> bytes:
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
    media.MediaError: missing, empty or unreadable file, no video or no audio
      stream, a decoding error, or no decodable frame / sample.
  """
  path = os.fspath(path)
  with media.open_container(path) as container:
    info = media.container_info(path, container)
    if not container.streams.video:
      raise media.MediaError(path, "no video stream")
    if not container.streams.audio:
      raise media.MediaError(path, "no audio stream")
    video = container.streams.video[0]
    audio = container.streams.audio[0]
    if options.decoder_threads > 1:
      video.thread_type = "AUTO"
      video.codec_context.thread_count = options.decoder_threads
    else:
      video.codec_context.thread_count = 1
    origin = media.start_seconds(container)
    limit = options.max_seconds if options.max_seconds is not None else math.inf
    accumulator = media_audio.AudioAccumulator(path, origin, audio)
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
    for frame in media.decode_packets(path, container, [video, audio],
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
    raise media.MediaError(path, "the video stream has no decodable frames")
  if accumulator.num_samples == 0:
    raise media.MediaError(path, "the audio stream has no decodable samples")
  rate = options.sample_rate_hz
  waveform = accumulator.waveform(rate)
  duration = min(limit, video_end, waveform.shape[0] / rate)
  keep(selector.finish(duration))
  waveform = waveform[:int(round(duration * rate))]
  kept = [item for item in kept if item[0] < duration]
  if not kept:
    raise media.MediaError(path, f"no frame before the end of the audio "
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

  for frame in media.decode_packets(path, container, [video]):
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
    raise media.MediaError(path, "the video stream has no decodable frames")
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
    media.MediaError: unreadable file, no video stream, a decoding error.
  """
  times = np.asarray(times_seconds, dtype=np.float64).reshape([-1])
  if times.size == 0:
    raise ValueError("times_seconds is empty: expected at least one time")
  if not np.all(np.isfinite(times)):
    raise ValueError(f"times_seconds={times.tolist()} must be finite")
  order = np.argsort(times, kind="stable")
  sorted_times = times[order]
  with media.open_container(path) as container:
    if not container.streams.video:
      raise media.MediaError(path, "no video stream")
    video = container.streams.video[0]
    video.codec_context.thread_count = 1
    origin = media.start_seconds(container)
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
