"""Inputs of the embedding API, checked at the door; the audio windows; the
result types (`Embeddings`, `VideoEmbeddings`) and the warnings.

Audio windows and timestamps: the one statement of the formula.

A recording of N samples (mono, at the model's 48 kHz after resampling) is
cut into windows of W = 48000 samples (1 s) every H = round(hop_seconds *
48000) samples, 1 <= H <= W. Window k starts at sample

    s_k = k * H - P,   P = W / 2 with `center=True` (default), else P = 0,

covers samples [s_k, s_k + W) of the recording (zeros outside it), and its
timestamp is its CENTRE, t_k = (s_k + W / 2) / 48000 seconds, in the time
of the input recording (t = 0 is its first sample):

  - `center=True`: t_k = k * H / 48000; window 0 is centred on t = 0 (half
    a window of zeros precedes the recording).
  - `center=False`: t_k = 0.5 s + k * H / 48000; window 0 starts at t = 0.

Windows continue until the last sample of the recording is inside one (the
last window zero-padded at the end), so every sample is embedded:

    T = 1 + max(0, ceil((N + P - W) / H))    windows, N >= 1.

`window_starts(..., cover_end=False)` keeps only the windows that end inside
the recording, T = 1 + max(0, floor((N + P - W) / H)) (the 1-second
sub-clips of the transfer protocol, `l3_tf.evaluation.audio_transfer`). The hop is
rounded to whole samples; timestamps are exact for that hop.

Other timestamps:

* A video's audio and image embeddings share one timestamps array, the
  audio windows' centres: the image embedding at t uses the frame displayed
  at t (the last frame whose presentation time is <= t; the last frame of
  the video after its end), the audio embedding at t the 1-second window
  centred on t. Time 0 is the container's start (`l3_tf.data.media`).
* An image file has one embedding with timestamp 0.

Video frames are resized to a short side of 256 (`ImageParams.
resize_short_side`) by `l3_tf.data.media` while decoding, with the resize that
made the training frames (which were then stored as JPEG); the model then
crops the central 224 x 224. Images given as arrays or image files are
resized inside the model from their own size.

Inputs are checked at the door (`check_options` for every argument with a
closed set of values): `embed_audio` and `embed_images` take one input or a
list (one result, or a list in the same order); an empty recording or a
0-sized image is a `ValueError` naming it; a recording shorter than one
window, a silent one or a constant image gives a valid result and an
`EmbedWarning` subclass (`warnings.filterwarnings("ignore",
category=embed.EmbedWarning)` silences them all).
"""

import math
import numbers
import os
from typing import NamedTuple, Sequence
import warnings

import numpy as np
import tensorflow as tf

from l3_tf.data import audio_params as audio_params_lib
from l3_tf.data import media
from l3_tf.serving import export as export_lib
from l3_tf.training import workdir as workdir_lib


DEFAULT_HOP_SECONDS = 0.1
DEFAULT_BATCH_SIZE = 32
# Frames decoded per `media_video.frames_at` call when embedding a video: bounds
# the memory of decoded frames (each call decodes from the start again).
FRAMES_PER_DECODE = 256
AUDIO_EMBEDDINGS = (512, 6144)
IMAGE_EMBEDDINGS = (512, 8192)
# "transfer" names the tap of PAPER.md §5 in either tower.
TRANSFER = "transfer"
TRANSFER_TAPS = {"audio": 6144, "image": 8192}
# "shared" names an AVE-Net's 128-d shared audio-image space, in either
# tower (an L3-Net has none).
SHARED = "shared"
CENTER_VALUES = (True, False)
# Peak |sample| at or below which a recording is reported silent (-80 dBFS).
SILENCE_PEAK = 1e-4


class Embeddings(NamedTuple):
  """Embeddings of one input: `embedding` [T, D] float32, `timestamps` [T]
  float64 seconds (see the module docstring for what a timestamp means)."""

  embedding: np.ndarray
  timestamps: np.ndarray


class VideoEmbeddings(NamedTuple):
  """Aligned embeddings of a video: `audio` [T, Da] and `image` [T, Di] at
  the shared `timestamps` [T] (seconds)."""

  audio: np.ndarray
  image: np.ndarray
  timestamps: np.ndarray


class EmbedWarning(UserWarning):
  """Base class of the warnings about inputs that embed, but suspiciously."""


class ShortInputWarning(EmbedWarning):
  """A recording shorter than one window: one zero-padded window."""


class SilentInputWarning(EmbedWarning):
  """A recording whose samples are all (nearly) zero."""


class ConstantImageWarning(EmbedWarning):
  """An image (or video frames) of a single colour."""


def _nonfinite_rows(batch: np.ndarray) -> np.ndarray | None:
  """bool [b]: rows of a float batch holding NaN or inf (None: uint8)."""
  if batch.dtype.kind != "f":
    return None
  return ~np.isfinite(batch.reshape(batch.shape[0], -1)).all(axis=1)


# -- argument checks (the one place) -----------------------------------------

def check_choice(name: str, value, allowed: Sequence):
  """`value` if it is one of `allowed`, else ValueError naming both."""
  if isinstance(value, np.bool_):
    value = bool(value)
  # True == 1 in Python: a bool is only accepted where bools are allowed.
  if any(type(value) is type(a) and value == a for a in allowed):
    return value
  raise ValueError(f"{name}={value!r}; expected one of {list(allowed)}")


def embedding_tap(embedding: int | str, modality: str) -> int:
  """The embedding size asked for: 512, 6144 (audio) or 8192 (image).

  Args:
    embedding: a size (int or str, "embedding_6144" too) or "transfer" (the
      modality's conv4_2 tap).
    modality: "audio" or "image".

  Raises:
    ValueError: not one of the modality's embeddings (they are listed).
  """
  allowed = {"audio": AUDIO_EMBEDDINGS, "image": IMAGE_EMBEDDINGS}[modality]
  size = None
  if embedding == TRANSFER:
    size = TRANSFER_TAPS[modality]
  elif isinstance(embedding, numbers.Integral) and not isinstance(
      embedding, (bool, np.bool_)):
    size = int(embedding)
  elif isinstance(embedding, str):
    text = embedding.removeprefix("embedding_")
    size = int(text) if text.isdigit() else None
  if size not in allowed:
    raise ValueError(f"embedding={embedding!r} but the {modality} embeddings "
                     f"are {list(allowed) + [TRANSFER]}")
  return size


def check_options(*, hop_seconds: float | None = None,
                  center: bool | None = None, batch_size: int | None = None,
                  params: audio_params_lib.AudioParams = audio_params_lib.DEFAULT
                  ) -> None:
  """Raises ValueError naming any argument outside its allowed values.

  Arguments left at None are not checked. `hop_seconds` must be in
  (0, window] and at least one sample; `center` a bool; `batch_size` an
  int >= 1. (Embedding names: `embedding_tap`.)
  """
  if center is not None:
    check_choice("center", center, CENTER_VALUES)
  if batch_size is not None and (
      not isinstance(batch_size, numbers.Integral) or
      isinstance(batch_size, (bool, np.bool_)) or batch_size < 1):
    raise ValueError(f"batch_size={batch_size!r}; expected an int >= 1")
  if hop_seconds is not None:
    hop_samples(hop_seconds, params)


def hop_samples(hop_seconds: float,
                params: audio_params_lib.AudioParams = audio_params_lib.DEFAULT
                ) -> int:
  """The hop in whole samples at the model's rate, in [1, window].

  Raises:
    ValueError: not a number in (0, window seconds] or under one sample.
  """
  if (not isinstance(hop_seconds, numbers.Real) or
      isinstance(hop_seconds, (bool, np.bool_)) or
      not math.isfinite(hop_seconds) or not hop_seconds > 0):
    raise ValueError(f"hop_seconds={hop_seconds!r}; expected a number of "
                     f"seconds in (0, {params.clip_seconds:g}]")
  hop = int(round(hop_seconds * params.sample_rate_hz))
  if hop < 1:
    raise ValueError(f"hop_seconds={hop_seconds} is shorter than one sample "
                     f"at {params.sample_rate_hz} Hz")
  if hop > params.clip_samples:
    raise ValueError(f"hop_seconds={hop_seconds} is longer than the "
                     f"{params.clip_seconds:g} s window: samples between "
                     "windows would never be embedded")
  return hop


# -- windows ------------------------------------------------------------------

def window_starts(num_samples: int, hop_seconds: float, center: bool,
                  params: audio_params_lib.AudioParams = audio_params_lib.DEFAULT,
                  *, cover_end: bool = True) -> np.ndarray:
  """First sample of each window of a recording (may be < 0).

  The formula is that of the module docstring.

  Args:
    num_samples: length N of the recording at `params.sample_rate_hz`.
    hop_seconds: the hop between windows.
    center: pad half a window at the start so window 0 is centred on t=0.
    params: the audio front end (window length and rate).
    cover_end: windows until the last sample is inside one (default); False:
      only windows that end inside the recording (at least one).

  Returns:
    int64 [T] window starts, relative to the recording's first sample.
  """
  window = params.clip_samples
  hop = hop_samples(hop_seconds, params)
  pad = window // 2 if center else 0
  beyond = num_samples + pad - window  # samples after window 0 ends
  if cover_end:
    count = 1 + max(0, -(-beyond // hop))  # ceil
  else:
    count = 1 + max(0, beyond // hop)
  return np.arange(count, dtype=np.int64) * hop - pad  # [T]


def window_timestamps(starts: np.ndarray,
                      params: audio_params_lib.AudioParams = audio_params_lib.DEFAULT
                      ) -> np.ndarray:
  """The centre of each window, in seconds (float64 [T])."""
  return (starts + params.clip_samples / 2) / params.sample_rate_hz


def starts_for_centres(centres_seconds: np.ndarray,
                       params: audio_params_lib.AudioParams = audio_params_lib.DEFAULT
                       ) -> np.ndarray:
  """The window starts (samples) of 1-second windows centred on the times."""
  centres = np.round(np.asarray(centres_seconds, np.float64)
                     * params.sample_rate_hz).astype(np.int64)
  return centres - params.clip_samples // 2


def extract_windows(waveform: np.ndarray, starts: np.ndarray,
                    window: int) -> np.ndarray:
  """float32 [len(starts), window]: the windows, zeros outside the signal."""
  waveform = np.asarray(waveform, np.float32)
  starts = np.asarray(starts, np.int64)
  if starts.size == 0:
    return np.zeros((0, window), np.float32)
  front = max(0, -int(starts.min()))
  back = max(0, int(starts.max()) + window - waveform.size)
  padded = np.pad(waveform, (front, back))
  view = np.lib.stride_tricks.sliding_window_view(padded, window)  # no copy
  return view[starts + front]  # [n, window], a copy of the rows only


# -- inputs -------------------------------------------------------------------

def to_mono(waveform: np.ndarray, name: str = "waveform") -> np.ndarray:
  """float32 [samples]: `waveform` [samples] or [samples, channels] averaged.

  Args:
    waveform: the recording.
    name: how errors call it.

  Raises:
    ValueError: not a non-empty floating-point array of rank 1 or 2 with
      fewer channels than samples.
  """
  if not isinstance(waveform, np.ndarray):
    raise ValueError(f"{name} is a {type(waveform).__name__}: expected a "
                     "float numpy array [samples] or [samples, channels] "
                     "(or a list of them)")
  if not np.issubdtype(waveform.dtype, np.floating):
    raise ValueError(f"{name} dtype={waveform.dtype}: expected float "
                     "samples in [-1, 1] (divide int16 PCM by 32768)")
  if waveform.ndim not in (1, 2):
    raise ValueError(f"{name} shape={waveform.shape}: expected [samples] "
                     "or [samples, channels] (a list for several recordings)")
  if waveform.size == 0:
    raise ValueError(f"{name} is empty (shape={waveform.shape}): nothing to "
                     "embed")
  if waveform.ndim == 2 and waveform.shape[1] > waveform.shape[0]:
    raise ValueError(
        f"{name} shape={waveform.shape} has more channels than samples: "
        "expected [samples, channels] (transpose a [channels, samples] "
        "array; pass a list for several recordings)")
  if waveform.ndim == 2:
    waveform = waveform.mean(axis=1)
  return waveform.astype(np.float32, copy=False)


def to_rgb_uint8(image: np.ndarray, name: str = "image") -> np.ndarray:
  """[..., h, w, c] uint8 with c in {1, 3, 4} -> [..., h, w, 3] uint8.

  Raises:
    ValueError: not a uint8 array of rank >= 3, 0-sized, or another number
      of channels.
  """
  if not isinstance(image, np.ndarray):
    raise ValueError(f"{name} is a {type(image).__name__}: expected a uint8 "
                     "numpy array [h, w, c] or [n, h, w, c]")
  if image.dtype != np.uint8:
    raise ValueError(f"{name} dtype={image.dtype}: expected uint8 pixels")
  if image.ndim < 3:
    raise ValueError(f"{name} shape={image.shape}: expected [h, w, channels]")
  if 0 in image.shape[-3:-1]:
    raise ValueError(f"{name} shape={image.shape} is empty (0 pixels)")
  channels = image.shape[-1]
  if channels == 1:
    return np.repeat(image, 3, axis=-1)
  if channels == 4:
    return image[..., :3]
  if channels != 3:
    raise ValueError(f"{name} shape={image.shape}: expected 1, 3 or 4 "
                     "channels")
  return image


def _as_list(value, name: str) -> tuple[list, bool]:
  """([items], True) for one array, (list(value), False) for a list."""
  if isinstance(value, (list, tuple)):
    return list(value), False
  if isinstance(value, np.ndarray):
    return [value], True
  raise ValueError(f"{name} is a {type(value).__name__}: expected a numpy "
                   "array or a list of them")


def _rates(sample_rate_hz, count: int, single: bool) -> list[int]:
  """One positive int rate per recording."""
  if isinstance(sample_rate_hz, (list, tuple, np.ndarray)):
    rates = list(np.asarray(sample_rate_hz).reshape(-1)) if isinstance(
        sample_rate_hz, np.ndarray) else list(sample_rate_hz)
    if single or len(rates) != count:
      raise ValueError(
          f"sample_rate_hz has {len(rates)} rates for "
          f"{'one recording' if single else f'{count} recordings'}: give "
          "one rate, or one per recording")
    names = [f"sample_rate_hz[{i}]" for i in range(count)]
  else:
    rates, names = [sample_rate_hz] * count, ["sample_rate_hz"] * count
  for rate, name in zip(rates, names):
    if (isinstance(rate, (bool, np.bool_)) or
        not isinstance(rate, numbers.Real) or rate != int(rate) or rate < 1):
      raise ValueError(f"{name}={rate!r}; expected a positive whole number "
                       "of Hz")
  return [int(r) for r in rates]


def _warn_audio(waveform: np.ndarray, name: str,
                params: audio_params_lib.AudioParams) -> None:
  if waveform.size < params.clip_samples:
    warnings.warn(
        f"{name} is {waveform.size / params.sample_rate_hz:.3f} s, shorter "
        f"than one {params.clip_seconds:g} s window: its embedding is of a "
        "zero-padded window", ShortInputWarning, stacklevel=4)
  peak = float(np.max(np.abs(waveform)))
  if not peak > SILENCE_PEAK:
    warnings.warn(f"{name} is silent (peak |sample| = {peak:.2g}): its "
                  "embeddings are those of silence", SilentInputWarning,
                  stacklevel=4)


def _count_constant(images: np.ndarray) -> int:
  """How many of the images [n, h, w, 3] are of a single colour."""
  flat = images.reshape(images.shape[0], -1)
  return int(np.sum(flat.min(axis=1) == flat.max(axis=1)))


def _warn_constant(constant: int, total: int, name: str,
                   what: str = "images") -> None:
  """One warning per input for its `constant` single-colour images."""
  if constant:
    which = ("is" if total == 1 else
             f"has {constant} of {total} {what} that are")
    warnings.warn(f"{name} {which} a single colour: nothing to see",
                  ConstantImageWarning, stacklevel=3)


def check_model_path(path: str | os.PathLike) -> None:
  """Raises FileNotFoundError unless `path` is an l3_tf SavedModel or a
  training workdir (what `Embedder.load` reads), without loading it."""
  path = os.fspath(path)
  if not (export_lib.is_saved_model(path) or
          tf.io.gfile.exists(workdir_lib.config_path(path))):
    raise FileNotFoundError(
        f"{path!r} is neither an l3_tf SavedModel (no saved_model.pb) nor a "
        f"training workdir (no {workdir_lib.CONFIG_FILENAME})")


def _batches(count: int, batch_size: int):
  check_options(batch_size=batch_size)
  for begin in range(0, count, batch_size):
    yield slice(begin, min(count, begin + batch_size))


def _try(function, *args):
  """function(*args), or the exception it raised (one file of many)."""
  try:
    return function(*args)
  except Exception as e:  # pylint: disable=broad-except
    return e


def _raise_or(result):
  """`result`, or raise it when it is the exception of a one-file call."""
  if isinstance(result, Exception):
    raise result
  return result


def check_has_video(path: str | os.PathLike) -> None:
  """Raises media.MediaError unless the file has a video stream."""
  if not media.probe(path).has_video:
    raise media.MediaError(path, "no video stream")
