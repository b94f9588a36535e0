"""Generated audio-visual videos: the project's embedded default dataset.

K classes, each an object with its own look (shape, colour, texture) and its
own sound (pitch, timbre, rhythm). Objects move over cluttered, noisy
backgrounds; an object's sound plays exactly while it is visible, over
background noise at a random SNR; a video may hold several objects (of
distinct classes). Videos are real H.264 + AAC mp4 files written with PyAV,
so the dataset is built by the same decoder as real videos.

Everything is a pure function of (seed, split, index): a video does not
depend on how many others are generated, or in which process.

The ground truth is written next to the videos as `ground_truth.json` and
read back with `read_ground_truth`: per video its label (the class visible
longest), all its classes, and per object its visibility intervals and its
box in every generated frame.

Library use (the demo, other sessions' tests):

  truth = generate.write_videos("/tmp/videos", num_videos=12, seed=0)

Making the AVC task learnable: classes differ in every cue at once (no two
share a shape, a colour or a pitch for K <= 8), pitches avoid near-integer
ratios so that no class's harmonic sits on another's fundamental, and the
label object is visible most of the time (at most one short gap), so few
1-second windows are empty.
"""

import colorsys
import concurrent.futures
import dataclasses
import fractions
import functools
import json
import math
import multiprocessing
import os
import zlib
from collections.abc import Sequence

import av
import numpy as np
from scipy import fft as scipy_fft

SAMPLE_RATE_HZ = 48000
GROUND_TRUTH_FILE = "ground_truth.json"
SHAPES = ("disc", "square", "triangle", "diamond", "cross", "ring", "star",
          "hexagon")
TEXTURES = ("solid", "stripes", "checker", "dots")
TIMBRES = ("sine", "odd", "saw", "octaves")
RHYTHMS = ("steady", "pulse_2hz", "pulse_4hz", "tremolo_6hz")
_COLOUR_NAMES = ("red", "orange", "yellow", "lime", "green", "teal", "cyan",
                 "azure", "blue", "violet", "magenta", "pink")
_MAX_HARMONIC = 8
_MAX_PARTIAL_HZ = 12000.0  # AAC at 128 kbit/s keeps this band cleanly


@dataclasses.dataclass(frozen=True)
class ClassSpec:
  """The look and the sound of one class."""

  index: int
  name: str
  shape: str
  colour: tuple[int, int, int]
  texture: str
  pitch_hz: float
  timbre: str
  rhythm: str


@dataclasses.dataclass(frozen=True)
class GeneratorParams:
  """What a video looks and sounds like; the difficulty knobs.

  Attributes:
    num_classes: K, the number of object classes.
    seconds: duration of every video.
    width / height: frame size in pixels.
    frames_per_second: frame rate of the mp4 files (8: a multiple of the
      stored 4 fps, smooth enough at these speeds, and a third cheaper to
      render and encode than 12).
    objects_per_video: (min, max) number of objects, each of a distinct
      class; the first is the label and is visible most of the time.
    snr_db_range: per-video SNR of the object sounds over the background
      noise, uniform in this range (dB; 0 dB: equal power).
    clutter: number of grey-ish distractor blobs drawn on the background.
    visual_noise: std of the per-frame pixel noise (on a [0, 1] scale).
    object_size_range: (min, max) object size in pixels.
    speed_range: (min, max) object speed in pixels per second.
    gap_probability: chance that the label object disappears once.
    gap_seconds: (min, max) length of that gap.
    min_pitch_hz: the lowest class pitch (the others are above it).
    audio_bitrate: AAC bit rate, bit/s.
    video_crf: x264 constant rate factor (lower: better quality; 26 keeps
      the objects crisp and halves the encoding time of the pixel noise).
    video_preset: x264 preset ("superfast": CABAC and B-frames, so the
      decoder reorders frames as it does for real videos).
  """

  num_classes: int = 8
  seconds: float = 6.0
  width: int = 256
  height: int = 256
  frames_per_second: int = 8
  objects_per_video: tuple[int, int] = (1, 2)
  snr_db_range: tuple[float, float] = (0.0, 10.0)
  clutter: int = 8
  visual_noise: float = 0.04
  object_size_range: tuple[int, int] = (64, 96)
  speed_range: tuple[float, float] = (30.0, 80.0)
  gap_probability: float = 0.5
  gap_seconds: tuple[float, float] = (0.5, 1.0)
  min_pitch_hz: float = 180.0
  audio_bitrate: int = 128000
  video_crf: int = 26
  video_preset: str = "superfast"

  def __post_init__(self):
    def pair(name, cast):
      value = tuple(cast(v) for v in getattr(self, name))
      if len(value) != 2 or value[0] > value[1]:
        raise ValueError(f"{name}={value}: expected (min, max), min <= max")
      object.__setattr__(self, name, value)

    pair("objects_per_video", int)
    pair("snr_db_range", float)
    pair("object_size_range", int)
    pair("speed_range", float)
    pair("gap_seconds", float)
    if self.num_classes < 2:
      raise ValueError(f"num_classes={self.num_classes}: expected >= 2")
    if not 1 <= self.objects_per_video[0]:
      raise ValueError(f"objects_per_video={self.objects_per_video}: "
                       "expected at least 1 object")
    if self.objects_per_video[1] > self.num_classes:
      raise ValueError(f"objects_per_video={self.objects_per_video}: objects "
                       f"have distinct classes, num_classes={self.num_classes}")
    if self.seconds < 1.0:
      raise ValueError(f"seconds={self.seconds}: expected >= 1 (one AVC "
                       "window)")
    if self.object_size_range[1] >= min(self.width, self.height):
      raise ValueError(f"object_size_range={self.object_size_range} does not "
                       f"fit a {self.width}x{self.height} frame")
    if self.frames_per_second < 1:
      raise ValueError(f"frames_per_second={self.frames_per_second}: "
                       "expected >= 1")

  @property
  def num_frames(self) -> int:
    return int(round(self.seconds * self.frames_per_second))

  @property
  def num_samples(self) -> int:
    return int(round(self.seconds * SAMPLE_RATE_HZ))

  def to_dict(self) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(self)))


def _pitch_ratio(num_classes: int) -> float:
  """The ratio between successive class pitches.

  The largest-margin ratio in [1.3, 1.6] for which no pitch ratio between
  two classes lies within a few percent of an integer 2..8 (a harmonic of
  one class never lands on another's fundamental).
  """
  best, best_margin = 1.45, -1.0
  for ratio in np.arange(1.30, 1.601, 0.002):
    margin = math.inf
    for n in range(1, num_classes):
      power = ratio**n
      for harmonic in range(2, _MAX_HARMONIC + 1):
        margin = min(margin, abs(power / harmonic - 1.0))
    if margin > best_margin + 1e-9:
      best, best_margin = float(ratio), margin
  return best


def class_specs(num_classes: int = 8,
                min_pitch_hz: float = 180.0) -> list[ClassSpec]:
  """The K class definitions (a pure function of K and the lowest pitch)."""
  ratio = _pitch_ratio(num_classes) if num_classes <= 12 else 2.0**(
      5.0 / num_classes)
  specs = []
  for i in range(num_classes):
    hue = i / num_classes
    rgb = colorsys.hsv_to_rgb(hue, 0.9, 1.0)
    colour = tuple(int(round(255 * c)) for c in rgb)
    colour_name = _COLOUR_NAMES[int(round(hue * len(_COLOUR_NAMES))) %
                                len(_COLOUR_NAMES)]
    shape = SHAPES[i % len(SHAPES)]
    name = f"{colour_name}_{shape}"
    if i >= len(SHAPES):
      name += f"_{i}"
    specs.append(ClassSpec(
        index=i, name=name, shape=shape, colour=colour,
        texture=TEXTURES[i % len(TEXTURES)],
        pitch_hz=float(round(min_pitch_hz * ratio**i, 2)),
        timbre=TIMBRES[(i + i // len(TIMBRES)) % len(TIMBRES)],
        rhythm=RHYTHMS[(i // 2 + i) % len(RHYTHMS)]))
  return specs


# ---------------------------------------------------------------- pictures


def shape_mask(shape: str, size: int) -> np.ndarray:
  """bool [size, size]: the silhouette of `shape` filling the square."""
  r = size / 2.0
  y, x = np.mgrid[:size, :size].astype(np.float32) + 0.5 - r
  dist = np.hypot(x, y)
  if shape == "disc":
    mask = dist <= r
  elif shape == "square":
    mask = (np.abs(x) <= 0.85 * r) & (np.abs(y) <= 0.85 * r)
  elif shape == "triangle":
    # Apex at the top, base at the bottom.
    mask = (y <= 0.85 * r) & (np.abs(x) * 1.8 <= (y + r))
  elif shape == "diamond":
    mask = np.abs(x) + np.abs(y) <= r
  elif shape == "cross":
    arm = r / 3.0
    mask = (((np.abs(x) <= arm) & (np.abs(y) <= r)) |
            ((np.abs(y) <= arm) & (np.abs(x) <= r)))
  elif shape == "ring":
    mask = (dist <= r) & (dist >= 0.55 * r)
  elif shape == "star":
    angle = np.arctan2(y, x) + np.pi / 2
    mask = dist <= r * (0.5 + 0.5 * np.abs(np.cos(2.5 * angle)))
  elif shape == "hexagon":
    mask = ((np.abs(y) <= 0.866 * r) &
            (np.abs(x) * 0.866 + np.abs(y) * 0.5 <= 0.866 * r))
  else:
    raise ValueError(f"shape={shape!r}: expected one of {SHAPES}")
  return mask


def sprite(spec: ClassSpec, size: int) -> tuple[np.ndarray, np.ndarray]:
  """(float32 [size, size, 3] colours in [0, 1], bool [size, size] mask)."""
  colour = np.asarray(spec.colour, np.float32) / 255.0
  dark = colour * 0.4
  y, x = np.mgrid[:size, :size]
  period = max(4, size // 5)
  if spec.texture == "solid":
    pattern = np.ones([size, size], bool)
  elif spec.texture == "stripes":
    pattern = (y // (period // 2)) % 2 == 0
  elif spec.texture == "checker":
    pattern = ((y // (period // 2)) + (x // (period // 2))) % 2 == 0
  elif spec.texture == "dots":
    cy = (y % period) - period / 2
    cx = (x % period) - period / 2
    pattern = np.hypot(cx, cy) > period / 4
  else:
    raise ValueError(f"texture={spec.texture!r}: expected one of {TEXTURES}")
  image = np.where(pattern[..., None], colour, dark).astype(np.float32)
  return image, shape_mask(spec.shape, size)


def _background(rng: np.random.Generator, params: GeneratorParams):
  """float32 [h, w, 3]: a low-saturation cluttered scene."""
  h, w = params.height, params.width
  base = np.asarray(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0, 0.2),
                                        rng.uniform(0.25, 0.65)), np.float32)
  image = np.broadcast_to(base, (h, w, 3)).copy()
  # Smooth luminance variation: a coarse random grid, upsampled.
  coarse = rng.uniform(-0.08, 0.08, (5, 5)).astype(np.float32)
  ys = np.linspace(0, 4, h)
  xs = np.linspace(0, 4, w)
  rows = np.array([np.interp(xs, np.arange(5), c) for c in coarse])
  smooth = np.array([np.interp(ys, np.arange(5), rows[:, j])
                     for j in range(w)]).T
  image += smooth[..., None]
  yy, xx = np.mgrid[:h, :w]
  for _ in range(params.clutter):
    colour = np.asarray(colorsys.hsv_to_rgb(
        rng.uniform(), rng.uniform(0, 0.25), rng.uniform(0.15, 0.85)),
                        np.float32)
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    ry, rx = rng.uniform(5, 40, 2)
    if rng.uniform() < 0.5:
      blob = ((yy - cy) / ry)**2 + ((xx - cx) / rx)**2 <= 1
    else:
      blob = (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx)
    image[blob] = colour
  return np.clip(image, 0, 1)


# ---------------------------------------------------------------- sounds


def class_tone(spec: ClassSpec, num_samples: int, phase: float = 0.0):
  """float32 [n]: the class's harmonic tone at unit RMS, steady."""
  t = np.arange(num_samples, dtype=np.float64) / SAMPLE_RATE_HZ
  harmonics = range(1, _MAX_HARMONIC + 1)
  if spec.timbre == "sine":
    weights = {1: 1.0, 2: 0.15}
  elif spec.timbre == "odd":
    weights = {h: 1.0 / h for h in harmonics if h % 2}
  elif spec.timbre == "saw":
    weights = {h: 1.0 / h for h in harmonics}
  elif spec.timbre == "octaves":
    weights = {1: 1.0, 2: 0.7, 4: 0.5, 8: 0.35}
  else:
    raise ValueError(f"timbre={spec.timbre!r}: expected one of {TIMBRES}")
  tone = np.zeros(num_samples)
  for h, weight in weights.items():
    if h * spec.pitch_hz < _MAX_PARTIAL_HZ:
      tone += weight * np.sin(2 * np.pi * h * spec.pitch_hz * t + h * phase)
  return (tone / np.sqrt(np.mean(tone**2))).astype(np.float32)


def _smooth_gate(on: np.ndarray, ramp_samples: int) -> np.ndarray:
  """A 0/1 gate with raised-cosine ramps *inside* the on-parts."""
  gate = on.astype(np.float32)
  if ramp_samples < 2 or not on.any():
    return gate
  edges = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(np.int8),
                                                 [0]])))
  for start, stop in zip(edges[0::2], edges[1::2]):
    n = min(ramp_samples, (stop - start) // 2)
    if n < 2:
      continue
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n))).astype(np.float32)
    gate[start:start + n] *= ramp
    gate[stop - n:stop] *= ramp[::-1]
  return gate


def rhythm_envelope(spec: ClassSpec, num_samples: int) -> np.ndarray:
  """float32 [n] amplitude envelope of the class's rhythm, starting "on"."""
  t = np.arange(num_samples) / SAMPLE_RATE_HZ
  if spec.rhythm == "steady":
    return np.ones(num_samples, np.float32)
  if spec.rhythm == "tremolo_6hz":
    return (0.55 + 0.45 * np.sin(2 * np.pi * 6.0 * t)).astype(np.float32)
  if spec.rhythm == "pulse_2hz":
    period, on = 0.5, 0.3
  elif spec.rhythm == "pulse_4hz":
    period, on = 0.25, 0.15
  else:
    raise ValueError(f"rhythm={spec.rhythm!r}: expected one of {RHYTHMS}")
  return _smooth_gate((t % period) < on, int(0.01 * SAMPLE_RATE_HZ))


def background_noise(rng: np.random.Generator, num_samples: int):
  """float32 [n] at unit RMS: half white, half pink (1/f power) noise."""
  white = rng.standard_normal(num_samples)
  length = scipy_fft.next_fast_len(num_samples, real=True)
  spectrum = scipy_fft.rfft(rng.standard_normal(length))
  freqs = np.fft.rfftfreq(length, 1.0 / SAMPLE_RATE_HZ)
  spectrum[1:] /= np.sqrt(freqs[1:] / freqs[1])
  spectrum[0] = 0
  pink = scipy_fft.irfft(spectrum, length)[:num_samples]
  noise = white / white.std() + pink / pink.std()
  return (noise / noise.std()).astype(np.float32)


# ---------------------------------------------------------------- one video


def _snap(seconds: float, fps: int) -> float:
  return round(seconds * fps) / fps


def _intervals(rng, params: GeneratorParams, num_objects: int):
  """Visibility intervals (seconds, on the frame grid) of each object."""
  d, fps = params.seconds, params.frames_per_second
  first = [[0.0, d]]
  gap_min, gap_max = params.gap_seconds
  if rng.uniform() < params.gap_probability and d >= gap_max + 2.0:
    length = _snap(rng.uniform(gap_min, gap_max), fps)
    start = _snap(rng.uniform(1.0, d - 1.0 - length), fps)
    if length > 0:
      first = [[0.0, start], [start + length, d]]
  intervals = [first]
  for _ in range(num_objects - 1):
    length = _snap(rng.uniform(min(1.0, d / 2), max(1.0, d / 2)), fps)
    start = _snap(rng.uniform(0.0, d - length), fps)
    intervals.append([[start, min(d, start + length)]])
  return intervals


def _visible(intervals, t: float) -> bool:
  return any(start <= t < stop for start, stop in intervals)


def render_video(seed: int, split: str, index: int, params: GeneratorParams):
  """One video as arrays, a pure function of (seed, split, index, params).

  Returns:
    (frames uint8 [num_frames, h, w, 3], audio float32 [num_samples] in
    [-1, 1], truth dict without "video_id" / "path").
  """
  rng = np.random.default_rng(
      [seed, zlib.crc32(split.encode("utf-8")), index])
  specs = class_specs(params.num_classes, params.min_pitch_hz)
  lo, hi = params.objects_per_video
  num_objects = int(rng.integers(lo, hi + 1))
  classes = [int(c) for c in rng.choice(params.num_classes, num_objects,
                                        replace=False)]
  intervals = _intervals(rng, params, num_objects)
  snr_db = float(rng.uniform(*params.snr_db_range))
  fps, h, w = params.frames_per_second, params.height, params.width
  n_frames, n_samples = params.num_frames, params.num_samples

  background = _background(rng, params)
  objects = []
  for k, spans in zip(classes, intervals):
    size = int(rng.integers(params.object_size_range[0],
                            params.object_size_range[1] + 1))
    image, mask = sprite(specs[k], size)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    extent = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)  # x0 y0 x1 y1
    speed = rng.uniform(*params.speed_range)
    angle = rng.uniform(0, 2 * np.pi)
    objects.append(dict(
        k=k, spans=spans, size=size, image=image, mask=mask, extent=extent,
        position=np.array([rng.uniform(0, w - size), rng.uniform(0, h - size)]),
        velocity=speed * np.array([np.cos(angle), np.sin(angle)]),
        boxes=[]))

  # Per-frame pixel noise: random windows of one field twice the frame size
  # (drawing fresh normals for every frame costs more than everything else).
  noise_field = rng.standard_normal([2 * h, 2 * w, 3], np.float32)
  noise_field *= params.visual_noise * 255.0
  background = background * 255.0 + 0.5  # + 0.5: astype rounds
  for obj in objects:
    obj["image"] = obj["image"] * 255.0 + 0.5
  frames = np.empty([n_frames, h, w, 3], np.uint8)
  for i in range(n_frames):
    t = i / fps
    frame = background.copy()
    for obj in objects:
      if i > 0:  # move, bouncing off the borders
        obj["position"] += obj["velocity"] / fps
        for axis, limit in ((0, w - obj["size"]), (1, h - obj["size"])):
          if not 0 <= obj["position"][axis] <= limit:
            obj["velocity"][axis] *= -1
            obj["position"][axis] = np.clip(obj["position"][axis], 0, limit)
      if not _visible(obj["spans"], t):
        obj["boxes"].append(None)
        continue
      x, y = (int(round(v)) for v in obj["position"])
      s = obj["size"]
      region = frame[y:y + s, x:x + s]
      region[obj["mask"]] = obj["image"][obj["mask"]]
      x0, y0, x1, y1 = obj["extent"]
      obj["boxes"].append([x + int(x0), y + int(y0), x + int(x1), y + int(y1)])
    dy, dx = rng.integers(0, h), rng.integers(0, w)
    frame += noise_field[dy:dy + h, dx:dx + w]
    np.clip(frame, 0, 255, out=frame)
    frames[i] = frame

  sound = np.zeros(n_samples, np.float32)
  ramp = int(0.005 * SAMPLE_RATE_HZ)
  for obj in objects:
    spec = specs[obj["k"]]
    tone = class_tone(spec, n_samples, rng.uniform(0, 2 * np.pi))
    for start, stop in obj["spans"]:
      # The sound starts when the object appears: its rhythm restarts then.
      a = int(round(start * SAMPLE_RATE_HZ))
      b = min(n_samples, int(round(stop * SAMPLE_RATE_HZ)))
      gate = _smooth_gate(np.ones(b - a, bool), ramp)
      sound[a:b] += tone[a:b] * rhythm_envelope(spec, b - a) * gate
  noise = background_noise(rng, n_samples) * 10.0**(-snr_db / 20.0)
  audio = sound + noise
  audio *= 0.7 / np.max(np.abs(audio))

  seen = [sum(b - a for a, b in obj["spans"]) for obj in objects]
  truth = {
      "split": split,
      "index": index,
      "label": classes[int(np.argmax(seen))],
      "labels": sorted(classes),
      "snr_db": snr_db,
      "duration_seconds": params.seconds,
      "frames_per_second": fps,
      "width": w,
      "height": h,
      "objects": [{"class": obj["k"], "name": specs[obj["k"]].name,
                   "intervals": obj["spans"], "boxes": obj["boxes"]}
                  for obj in objects],
  }
  truth["label_name"] = specs[truth["label"]].name
  return frames, audio.astype(np.float32), truth


def write_mp4(path: str, frames: np.ndarray, audio: np.ndarray,
              frames_per_second: int, audio_bitrate: int = 128000,
              crf: int = 26, preset: str = "superfast") -> None:
  """Writes H.264 (yuv420p) + AAC (48 kHz mono) mp4, deterministically.

  Args:
    path: output file.
    frames: uint8 [n, h, w, 3] RGB, h and w even.
    audio: float32 [m] in [-1, 1] at 48 kHz.
    frames_per_second: constant frame rate.
    audio_bitrate: AAC bit rate, bit/s.
    crf: x264 quality (lower is better).
    preset: x264 speed preset.
  """
  with av.open(path, "w", format="mp4") as container:
    video = container.add_stream("libx264", rate=frames_per_second)
    video.width, video.height = frames.shape[2], frames.shape[1]
    video.pix_fmt = "yuv420p"
    video.codec_context.thread_count = 1  # one video per process
    video.options = {"crf": str(crf), "preset": preset}
    sound = container.add_stream("aac", rate=SAMPLE_RATE_HZ, layout="mono")
    sound.bit_rate = audio_bitrate
    sound.options = {"aac_coder": "fast"}  # 2x faster than twoloop
    for i, image in enumerate(frames):
      frame = av.VideoFrame.from_ndarray(image, format="rgb24")
      frame.pts = i
      frame.time_base = fractions.Fraction(1, frames_per_second)
      container.mux(video.encode(frame))
    container.mux(video.encode(None))
    chunk = 1024  # the AAC frame size
    for start in range(0, audio.shape[0], chunk):
      block = np.ascontiguousarray(audio[None, start:start + chunk],
                                   np.float32)
      frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="mono")
      frame.sample_rate = SAMPLE_RATE_HZ
      frame.pts = start
      frame.time_base = fractions.Fraction(1, SAMPLE_RATE_HZ)
      container.mux(sound.encode(frame))
    container.mux(sound.encode(None))


def _write_one(job, out_dir: str, seed: int, params: GeneratorParams):
  split, index = job
  frames, audio, truth = render_video(seed, split, index, params)
  relative = f"{split}/{index:05d}.mp4"
  os.makedirs(os.path.join(out_dir, split), exist_ok=True)
  write_mp4(os.path.join(out_dir, relative), frames, audio,
            params.frames_per_second, params.audio_bitrate, params.video_crf,
            params.video_preset)
  truth["video_id"] = relative
  truth["path"] = relative
  return truth


def write_dataset(out_dir: str | os.PathLike,
                  num_videos: dict[str, int],
                  seed: int = 0,
                  params: GeneratorParams = GeneratorParams(),
                  num_workers: int = 1) -> dict:
  """Writes `<out_dir>/<split>/<index>.mp4` and `<out_dir>/ground_truth.json`.

  Args:
    out_dir: output folder (created).
    num_videos: videos per split, e.g. {"train": 8, "validation": 2}.
    seed: the dataset seed; same seed and params, same files.
    params: look, sound and difficulty of the videos.
    num_workers: videos rendered and encoded in parallel processes.

  Returns:
    The ground truth (what `read_ground_truth` returns).
  """
  out_dir = os.fspath(out_dir)
  os.makedirs(out_dir, exist_ok=True)
  jobs = [(split, i) for split, n in num_videos.items() for i in range(n)]
  work = functools.partial(_write_one, out_dir=out_dir, seed=seed,
                           params=params)
  if num_workers > 1 and len(jobs) > 1:
    # fork: the children render with NumPy and PyAV only (never TensorFlow),
    # and unlike spawn it works from scripts without a __main__ guard.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context(
        "fork" if "fork" in methods else "spawn")
    with concurrent.futures.ProcessPoolExecutor(
        num_workers, mp_context=context) as pool:
      truths = list(pool.map(work, jobs, chunksize=4))
  else:
    truths = [work(job) for job in jobs]
  truth = {
      "seed": seed,
      "params": params.to_dict(),
      "num_videos": dict(num_videos),
      "classes": [dataclasses.asdict(s) for s in
                  class_specs(params.num_classes, params.min_pitch_hz)],
      "videos": {t["video_id"]: t for t in truths},
  }
  # Written last: its presence marks a complete folder.
  tmp = os.path.join(out_dir, GROUND_TRUTH_FILE + ".tmp")
  with open(tmp, "w") as f:
    json.dump(truth, f)
  os.replace(tmp, os.path.join(out_dir, GROUND_TRUTH_FILE))
  return truth


def write_videos(out_dir: str | os.PathLike, num_videos: int, seed: int = 0,
                 params: GeneratorParams = GeneratorParams(),
                 split: str = "train", num_workers: int = 1) -> dict:
  """Writes `num_videos` videos of one split; see `write_dataset`."""
  return write_dataset(out_dir, {split: num_videos}, seed, params,
                       num_workers)


def read_ground_truth(path: str | os.PathLike) -> dict:
  """The ground truth of a generated folder (or of a built dataset dir).

  Args:
    path: the folder holding `ground_truth.json`, or the file itself.

  Returns:
    {"seed", "params", "num_videos", "classes": [ClassSpec dicts],
     "videos": {video_id: {"label", "label_name", "labels", "snr_db",
     "duration_seconds", "frames_per_second", "width", "height",
     "objects": [{"class", "name", "intervals": [[start, stop], ...],
     "boxes": [[x0, y0, x1, y1] or None per generated frame]}]}}}.
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    path = os.path.join(path, GROUND_TRUTH_FILE)
  with open(path) as f:
    return json.load(f)


def visible_objects(video: dict, time_seconds: float,
                    normalized: bool = True) -> list[dict]:
  """The objects visible at a time, with their box then.

  Args:
    video: one entry of `read_ground_truth(...)["videos"]`.
    time_seconds: a time in the video (e.g. a stored frame time).
    normalized: boxes as fractions of the frame [x0, y0, x1, y1] (valid for
      the stored frames, which keep the aspect ratio) instead of pixels.

  Returns:
    [{"class", "name", "box"}] for the frame displayed at that time.
  """
  index = min(int(math.floor(time_seconds * video["frames_per_second"] + 1e-6)),
              int(round(video["duration_seconds"] *
                        video["frames_per_second"])) - 1)
  size = [video["width"], video["height"]] * 2
  found = []
  for obj in video["objects"]:
    box = obj["boxes"][max(index, 0)]
    if box is not None:
      if normalized:
        box = [v / s for v, s in zip(box, size)]
      found.append({"class": obj["class"], "name": obj["name"],
                    "box": list(box)})
  return found


def sounding_intervals(video: dict, class_index: int) -> list[list[float]]:
  """When the sound of a class plays in a video (== when it is visible)."""
  spans = []
  for obj in video["objects"]:
    if obj["class"] == class_index:
      spans.extend(obj["intervals"])
  return sorted(spans)


def class_level_ceiling(frame_video_ids: Sequence[str],
                        audio_video_ids: Sequence[str],
                        labels: Sequence[int], truth: dict) -> dict:
  """The best AVC accuracy of a model that only tells classes apart.

  A negative pair whose two videos show the same class looks and sounds like
  a positive to such a model, which at best calls it positive; every other
  pair it gets right. The share of same-class negatives in the evaluation
  pairs therefore caps the accuracy of a class-level model.

  Args:
    frame_video_ids: per pair, the video of the frame (a key of
      `truth["videos"]`, e.g. "test/00003.mp4"; bytes are decoded).
    audio_video_ids: per pair, the video of the sound.
    labels: per pair, 1 for a positive (same video), 0 for a negative.
    truth: `read_ground_truth(...)` of the videos.

  Returns:
    {"ceiling": (pairs - same-class negatives) / pairs,
     "same_class_negatives": count, "negatives": count, "pairs": count}.

  Raises:
    ValueError: the lists differ in length, a label is not 0/1, or a video
      id is not in the ground truth (named).
  """
  if not len(frame_video_ids) == len(audio_video_ids) == len(labels):
    raise ValueError(
        f"{len(frame_video_ids)} frame ids, {len(audio_video_ids)} audio ids "
        f"and {len(labels)} labels: expected one of each per pair")

  def label_of(video_id):
    key = video_id.decode() if isinstance(video_id, bytes) else video_id
    if key not in truth["videos"]:
      raise ValueError(f"video {key!r} is not in the ground truth "
                       f"({len(truth['videos'])} videos)")
    return truth["videos"][key]["label"]

  same = negatives = 0
  for frame_id, audio_id, label in zip(frame_video_ids, audio_video_ids,
                                       labels):
    if label not in (0, 1):
      raise ValueError(f"label={label!r}: expected 0 or 1")
    if label == 0:
      negatives += 1
      same += label_of(frame_id) == label_of(audio_id)
  pairs = len(labels)
  return {"ceiling": (pairs - same) / pairs if pairs else float("nan"),
          "same_class_negatives": int(same), "negatives": negatives,
          "pairs": pairs}


def describe_classes(num_classes: int = 8,
                     min_pitch_hz: float = 180.0) -> Sequence[str]:
  """One line per class: its look and its sound."""
  return [f"{s.index}: {s.name:16s} {s.texture:8s} {s.pitch_hz:7.1f} Hz "
          f"{s.timbre:7s} {s.rhythm}"
          for s in class_specs(num_classes, min_pitch_hz)]
