"""Embeddings and correspondence scores from a trained L3-Net.

An `Embedder` is built once, from a SavedModel written by `l3_tf.serving.export` or
from a training workdir, and then embeds any number of waveforms, images and
files without reloading anything.

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
from typing import Callable, NamedTuple, Sequence
import warnings

import numpy as np
import tensorflow as tf

from l3_tf.data import audio_params as audio_params_lib
from l3_tf.data import image_ops
from l3_tf.data import media
from l3_tf.model import finite
from l3_tf.serving import export as export_lib
from l3_tf.training import workdir as workdir_lib

DEFAULT_HOP_SECONDS = 0.1
DEFAULT_BATCH_SIZE = 32
# Frames decoded per `media.frames_at` call when embedding a video: bounds
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


class EmbedWarning(UserWarning):
  """Base class of the warnings about inputs that embed, but suspiciously."""


class ShortInputWarning(EmbedWarning):
  """A recording shorter than one window: one zero-padded window."""


class SilentInputWarning(EmbedWarning):
  """A recording whose samples are all (nearly) zero."""


class ConstantImageWarning(EmbedWarning):
  """An image (or video frames) of a single colour."""


class Embeddings(NamedTuple):
  """Embeddings of one input: `embedding` [T, D] float32, `timestamps` [T]
  float64 seconds (see the module docstring for what a timestamp means)."""

  embedding: np.ndarray
  timestamps: np.ndarray


class _Head(NamedTuple):
  """Where an embedding comes from: the exported function, its output key,
  the width of the vectors it returns and the model's path (for errors)."""

  function: Callable
  key: str
  width: int
  name: str
  source: str

  def __call__(self, batch: np.ndarray) -> np.ndarray:
    """[b, ...] inputs -> [b, width] embeddings, all finite.

    Raises:
      finite.NonFiniteError: a non-finite embedding of a finite input (a
        row whose input holds NaN or inf is NaN by the export's contract).
    """
    out = self.function(tf.constant(batch))[self.key].numpy()  # [b, width]
    return finite.check_outputs(out, f"{self.name} {self.key}", self.source,
                                allowed_rows=_nonfinite_rows(batch))


def _nonfinite_rows(batch: np.ndarray) -> np.ndarray | None:
  """bool [b]: rows of a float batch holding NaN or inf (None: uint8)."""
  if batch.dtype.kind != "f":
    return None
  return ~np.isfinite(batch.reshape(batch.shape[0], -1)).all(axis=1)


def _probe_pair(params: audio_params_lib.AudioParams
                ) -> tuple[np.ndarray, np.ndarray]:
  """A fixed image (uint8 [1, 224, 224, 3]) and sound (a noisy 440 Hz tone,
  float32 [1, 48000]): `Embedder.load` checks that an export scores it
  finitely."""
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
  t = np.arange(params.clip_samples) / params.sample_rate_hz
  waveform = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.1 * rng.standard_normal(
      t.size)
  return image, waveform[np.newaxis].astype(np.float32)


class VideoEmbeddings(NamedTuple):
  """Aligned embeddings of a video: `audio` [T, Da] and `image` [T, Di] at
  the shared `timestamps` [T] (seconds)."""

  audio: np.ndarray
  image: np.ndarray
  timestamps: np.ndarray


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


class Embedder:
  """A trained L3-Net ready to embed and score; build it once, reuse it.

  Attributes:
    audio_params: the audio front end of the model (window, rate).
    image_params: the vision front end.
    embedding_sizes: {"audio_embedding": {"embedding_512": D, ...},
      "image_embedding": {...}}: the actual sizes (they follow the width).
    source: the path it was loaded from.
  """

  def __init__(self, functions, audio_params: audio_params_lib.AudioParams,
               image_params: image_ops.ImageParams,
               embedding_sizes: dict, source: str):
    """Use `Embedder.load`; `functions` has the three serving functions
    (`audio_embedding`, `image_embedding`, `avc_score`) as attributes."""
    self._functions = functions
    self.audio_params = audio_params
    self.image_params = image_params
    self.embedding_sizes = embedding_sizes
    self.source = source

  @classmethod
  def load(cls, path: str, compute_dtype: str = "float32") -> "Embedder":
    """From an l3_tf SavedModel or a training workdir (latest checkpoint).

    Args:
      path: a SavedModel directory (`python -m experiments.export`) or a
        training workdir.
      compute_dtype: for a workdir, "float32" or "bfloat16" (see
        `export.L3Serving`); a SavedModel computes in the dtype it was
        exported with.

    Raises:
      FileNotFoundError: `path` is neither.
      finite.NonFiniteError: a weight of the model holds NaN or inf (named),
        or it scores a probe pair NaN or inf (see `finite.check_model`).
    """
    path = os.fspath(path)
    check_model_path(path)
    if export_lib.is_saved_model(path):
      assets = export_lib.read_assets(path)
      if compute_dtype != assets["export"]["compute_dtype"] and (
          compute_dtype != "float32"):
        raise ValueError(
            f"compute_dtype={compute_dtype!r} but {path} was exported with "
            f"{assets['export']['compute_dtype']!r}; re-export with "
            "--compute_dtype")
      loaded = tf.saved_model.load(path)
      finite.check_variables(export_lib.signature_variables(loaded),
                             f"export {path}")
      embedder = cls(loaded, assets["audio_params"], assets["image_params"],
                     assets["export"]["embedding_sizes"], path)
      # Finite weights can still overflow (a workdir's model was checked
      # so by `restore_avc_model`): fail here, before any output is written.
      embedder.check_probe()
      return embedder
    if tf.io.gfile.exists(workdir_lib.config_path(path)):
      config, avc, _ = workdir_lib.restore_avc_model(path)
      return cls.from_model(avc, config, path, compute_dtype)
    raise FileNotFoundError(
        f"{path!r} is neither an l3_tf SavedModel (no saved_model.pb) nor a "
        f"training workdir (no {workdir_lib.CONFIG_FILENAME})")

  def check_probe(self) -> None:
    """Embeds and scores a fixed pair (`_probe_pair`), checking every output.

    Raises:
      finite.NonFiniteError: naming the output that is NaN or inf.
    """
    image, waveform = _probe_pair(self.audio_params)
    for name, function, batch in (
        (export_lib.AUDIO_EMBEDDING, self._functions.audio_embedding, waveform),
        (export_lib.IMAGE_EMBEDDING, self._functions.image_embedding, image)):
      for key, value in function(tf.constant(batch)).items():
        finite.check_outputs(value.numpy(), f"{name} {key} of a probe input",
                             self.source)
    self.score(image, waveform)

  @classmethod
  def from_model(cls, avc, config, source: str,
                 compute_dtype: str = "float32") -> "Embedder":
    """From an in-memory float32 `avc_network` (e.g. randomly initialised).

    The same serving code as a workdir or an export (`export.L3Serving`).

    Args:
      avc: the AVC network.
      config: the `Config` it was built with (front ends, widths).
      source: a description of the weights, kept as `source`.
      compute_dtype: "float32" or "bfloat16" (see `export.L3Serving`).
    """
    module = export_lib.L3Serving(avc, config, compute_dtype)
    return cls(module, config.audio, config.image, module.embedding_sizes(),
               source)

  # -- arrays ---------------------------------------------------------------

  def resample(self, waveform: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """Mono float32 at the model's rate (48 kHz) from any rate."""
    waveform = to_mono(waveform)
    rate = self.audio_params.sample_rate_hz
    if int(sample_rate_hz) == rate:
      return waveform
    return np.asarray(media.resample(waveform, int(sample_rate_hz), rate),
                      np.float32)

  def _head(self, embedding: int | str, modality: str) -> _Head:
    """The checked `embedding` of `modality` ("audio" / "image"): a tap
    size (`embedding_tap`) or `SHARED`.

    Raises:
      ValueError: not one of the modality's embeddings, or `SHARED` from a
        model without a shared space (an L3-Net).
    """
    if isinstance(embedding, str) and embedding == SHARED:
      if export_lib.SHARED_AUDIO_EMBEDDING not in self.embedding_sizes:
        raise ValueError(f"{self.source}: {export_lib.NO_SHARED_SPACE}")
      key = export_lib.SHARED_OUTPUT
      function = {"audio": self._functions.shared_audio_embedding,
                  "image": self._functions.shared_image_embedding}[modality]
      return _Head(function, key, self.embedding_sizes[
          export_lib.SHARED_AUDIO_EMBEDDING][key], f"shared_{modality}_embedding",
                   self.source)
    size = embedding_tap(embedding, modality)
    key = f"embedding_{size}"
    signature, function = {
        "audio": (export_lib.AUDIO_EMBEDDING, self._functions.audio_embedding),
        "image": (export_lib.IMAGE_EMBEDDING, self._functions.image_embedding),
    }[modality]
    return _Head(function, key, self.embedding_sizes[signature][key],
                 signature, self.source)

  def embed_windows(self, windows: np.ndarray, embedding: int | str = 6144,
                    batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """float32 [n, D]: embeddings of n 1-second windows [n, 48000] (or one,
    [48000]) at 48 kHz (`embedding` as in `embed_audio`).

    Raises:
      ValueError: windows of another shape, or an unknown `embedding`.
    """
    head = self._head(embedding, "audio")
    given = windows
    windows = np.asarray(windows, np.float32)
    windows = windows[np.newaxis] if windows.ndim == 1 else windows
    window = self.audio_params.clip_samples
    if windows.ndim != 2 or windows.shape[1] != window:
      raise ValueError(f"windows shape={np.shape(given)}: expected "
                       f"[n, {window}] at {self.audio_params.sample_rate_hz}"
                       " Hz")
    out = np.empty((windows.shape[0], head.width), np.float32)
    for part in _batches(windows.shape[0], batch_size):
      out[part] = head(windows[part])  # [b, 48000] -> [b, D]
    return out

  def embed_audio(self, waveform: np.ndarray | Sequence[np.ndarray],
                  sample_rate_hz: int | Sequence[int], *,
                  hop_seconds: float = DEFAULT_HOP_SECONDS,
                  center: bool = True, embedding: int | str = 6144,
                  batch_size: int = DEFAULT_BATCH_SIZE
                  ) -> Embeddings | list[Embeddings]:
    """Embeds 1-second windows of a recording, or of each of a list.

    The windows of all recordings of a list share network calls; each
    result equals that of a call with the recording alone.

    Args:
      waveform: float [samples] or [samples, channels] in [-1, 1] at
        `sample_rate_hz`; channels are averaged, then resampled to 48 kHz.
        Or a list of such arrays.
      sample_rate_hz: the rate of `waveform`; for a list, one rate for all
        or a list of one rate per recording.
      hop_seconds: time between consecutive windows, at most 1 s.
      center: pad half a window at the start (window 0 centred on t=0).
      embedding: 512 (pool4) or 6144 / "transfer" (conv4_2 before ReLU,
        pooled); or "shared" (an AVE-Net's 128-d shared space).
      batch_size: windows per network call.

    Returns:
      `Embeddings` with timestamps = window centres (module docstring), or
      a list of them in the order of the list.

    Raises:
      ValueError: an argument outside its values, named; an empty recording.

    Warns:
      ShortInputWarning, SilentInputWarning (both `EmbedWarning`).
    """
    items, single = _as_list(waveform, "waveform")
    rates = _rates(sample_rate_hz, len(items), single)
    names = ["waveform"] if single else [
        f"waveform[{i}]" for i in range(len(items))]
    mono = [to_mono(item, name) for item, name in zip(items, names)]
    check_options(hop_seconds=hop_seconds, center=center,
                  batch_size=batch_size, params=self.audio_params)
    head = self._head(embedding, "audio")
    results = self._embed_recordings(
        [self.resample(m, r) for m, r in zip(mono, rates)], names,
        hop_seconds=hop_seconds, center=center, head=head,
        batch_size=batch_size)
    return results[0] if single else results

  def _embed_recordings(self, recordings: list[np.ndarray], names: list[str],
                        *, hop_seconds: float, center: bool, head: _Head,
                        batch_size: int) -> list[Embeddings]:
    """Checked mono 48 kHz recordings -> their Embeddings, windows of all
    recordings batched together."""
    window = self.audio_params.clip_samples
    starts = []
    for recording, name in zip(recordings, names):
      _warn_audio(recording, name, self.audio_params)
      starts.append(window_starts(recording.size, hop_seconds, center,
                                  self.audio_params))  # [T_i]
    ends = np.cumsum([s.size for s in starts])  # window i of all: item
    out = np.empty((int(ends[-1]) if ends.size else 0, head.width),
                   np.float32)
    # Windows are cut per batch, so memory stays at one batch of windows.
    for part in _batches(out.shape[0], batch_size):
      pieces, begin = [], part.start
      while begin < part.stop:
        item = int(np.searchsorted(ends, begin, side="right"))
        first = begin - (int(ends[item - 1]) if item else 0)
        take = min(part.stop, int(ends[item])) - begin
        pieces.append(extract_windows(recordings[item],
                                      starts[item][first:first + take],
                                      window))
        begin += take
      out[part] = head(np.concatenate(pieces))  # [b, 48000] -> [b, D]
    offsets = np.concatenate([[0], ends]).astype(np.int64)
    return [Embeddings(out[offsets[i]:offsets[i + 1]],
                       window_timestamps(s, self.audio_params))
            for i, s in enumerate(starts)]

  def embed_images(self, images: np.ndarray | Sequence[np.ndarray], *,
                   embedding: int | str = 8192,
                   batch_size: int = DEFAULT_BATCH_SIZE
                   ) -> np.ndarray | list[np.ndarray]:
    """Embeddings of uint8 images (any size; resized and centre-cropped in
    the model).

    Args:
      images: uint8 [h, w, c] (one image) or [n, h, w, c] (n of one size),
        c in {1, 3, 4}; or a list of such arrays, of any sizes.
      embedding: 512 (pool4) or 8192 / "transfer" (conv4_2 after ReLU,
        pooled); or "shared" (an AVE-Net's 128-d shared space).
      batch_size: images per network call.

    Returns:
      float32 [n, D] ([1, D] for one image); for a list, a list of those in
      its order (consecutive images of one size share network calls).

    Raises:
      ValueError: an argument outside its values, named; a 0-sized image.

    Warns:
      ConstantImageWarning (an `EmbedWarning`).
    """
    items, single = _as_list(images, "images")
    names = ["images"] if single else [f"images[{i}]"
                                       for i in range(len(items))]
    head = self._head(embedding, "image")
    check_options(batch_size=batch_size)
    stacks = []
    for item, name in zip(items, names):
      item = to_rgb_uint8(item, name)
      if item.ndim == 3:
        item = item[np.newaxis]
      elif item.ndim != 4:
        raise ValueError(f"{name} shape={item.shape}: expected [h, w, c] or "
                         "[n, h, w, c]")
      stacks.append(item)  # [n_i, h, w, 3]
    for stack, name in zip(stacks, names):  # warn once all are valid
      _warn_constant(_count_constant(stack), stack.shape[0], name)
    return self._embed_image_stacks(stacks, head, batch_size, single)

  def _embed_image_stacks(self, stacks: list[np.ndarray], head: _Head,
                          batch_size: int, single: bool = False):
    """Checked uint8 [n_i, h, w, 3] stacks -> their [n_i, D] embeddings."""
    # Consecutive inputs of one size go through the model together.
    groups: list[list[int]] = []
    for i, stack in enumerate(stacks):
      if groups and stacks[groups[-1][-1]].shape[1:] == stack.shape[1:]:
        groups[-1].append(i)
      else:
        groups.append([i])
    results = [None] * len(stacks)
    for group in groups:
      batch = np.concatenate([stacks[i] for i in group])  # [n, h, w, 3]
      out = np.empty((batch.shape[0], head.width), np.float32)
      for part in _batches(batch.shape[0], batch_size):
        out[part] = head(batch[part])  # [b, D]
      begin = 0
      for i in group:
        results[i] = out[begin:begin + stacks[i].shape[0]]
        begin += stacks[i].shape[0]
    return results[0] if single else results

  def score(self, image: np.ndarray, waveform: np.ndarray,
            sample_rate_hz: int | None = None) -> np.ndarray:
    """P(correspondence) of image/sound pairs.

    Args:
      image: uint8 [h, w, c] or [n, h, w, c].
      waveform: float 1-second windows [48000] or [n, 48000] at 48 kHz, or,
        when `sample_rate_hz` is given, one [samples] (or [samples,
        channels]) recording of 1 second at that rate, resampled first.

    Returns:
      float32 [n] probabilities (a 0-d array for one pair).
    """
    single = np.ndim(image) == 3
    image = to_rgb_uint8(np.asarray(image if not single else image[np.newaxis]))
    window = self.audio_params.clip_samples
    if sample_rate_hz is not None:
      waveform = self.resample(waveform, sample_rate_hz)
      waveform = extract_windows(waveform, np.zeros([1], np.int64), window)
    waveform = np.asarray(waveform, np.float32)
    if waveform.shape[-1] != window or waveform.ndim > 2:
      raise ValueError(f"waveform shape={waveform.shape}: expected [{window}] "
                       f"or [n, {window}] at {self.audio_params.sample_rate_hz}"
                       " Hz, or pass sample_rate_hz to resample a recording")
    waveform = waveform.reshape(-1, window)
    probability = self._functions.avc_score(
        tf.constant(image), tf.constant(waveform))["probability"].numpy()
    finite.check_outputs(probability, "avc_score probability", self.source,
                         allowed_rows=_nonfinite_rows(waveform))
    return probability[0] if single else probability

  def shared_embedding(self, *, images=None, windows=None,
                       batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """float32 [n, 128] unit-norm vectors in an AVE-Net's shared audio-image
    space, of images or of 1-second sounds (exactly one of the two).

    Image and sound vectors are comparable: the nearest sounds of an image
    (Euclidean distance) are those the model thinks go with it.

    Args:
      images: uint8 [n, h, w, c] or [h, w, c] (any size, as `embed_images`).
      windows: float32 [n, 48000] or [48000] 1-second windows at 48 kHz.
      batch_size: inputs per network call.

    Raises:
      ValueError: not exactly one of `images` / `windows`, a window of the
        wrong length, or a model without a shared space (L3-Net).
    """
    if (images is None) == (windows is None):
      raise ValueError("pass exactly one of images= or windows=")
    if images is not None:  # [h, w, c] -> [1, D] there too
      return self.embed_images(np.asarray(images), embedding=SHARED,
                               batch_size=batch_size)
    return self.embed_windows(windows, embedding=SHARED, batch_size=batch_size)

  # -- files ----------------------------------------------------------------
  #
  # Each `*_files` method takes a list of paths and batches the windows (or
  # frames, or images) of all of them together for the network: what a
  # pipeline that embeds many small files needs. A file that cannot be read
  # gives its exception in its place in the returned list and the others are
  # embedded; the one-file methods are the same code with a list of one, and
  # raise that exception.

  def embed_audio_files(self, paths: Sequence[str | os.PathLike], *,
                        hop_seconds: float = DEFAULT_HOP_SECONDS,
                        center: bool = True, embedding: int | str = 6144,
                        batch_size: int = DEFAULT_BATCH_SIZE
                        ) -> list[Embeddings | Exception]:
    """Embeds the first audio stream of each file (audio or video), the
    windows of all files sharing network calls.

    Args:
      paths: the files.
      hop_seconds, center, embedding, batch_size: as in `embed_audio`.

    Returns:
      Per path, in order: its `Embeddings`, or the exception that kept it
      from being embedded (`media.MediaError`: unreadable, no audio, no
      samples).

    Raises:
      ValueError: an argument outside its values (before any decoding).
    """
    paths = [os.fspath(path) for path in paths]
    check_options(hop_seconds=hop_seconds, center=center,
                  batch_size=batch_size, params=self.audio_params)
    head = self._head(embedding, "audio")
    return self._embed_audio_paths(paths, hop_seconds=hop_seconds,
                                   center=center, head=head,
                                   batch_size=batch_size)

  def _embed_audio_paths(self, paths: list[str], *, hop_seconds: float,
                         center: bool, head: _Head, batch_size: int
                         ) -> list[Embeddings | Exception]:
    results = [_try(self._load_audio, path) for path in paths]
    good = [i for i, r in enumerate(results) if not isinstance(r, Exception)]
    embedded = self._embed_recordings(
        [results[i] for i in good], [paths[i] for i in good],
        hop_seconds=hop_seconds, center=center, head=head,
        batch_size=batch_size)
    for i, result in zip(good, embedded):
      results[i] = result
    return results

  def embed_audio_file(self, path: str | os.PathLike, *,
                       hop_seconds: float = DEFAULT_HOP_SECONDS,
                       center: bool = True, embedding: int | str = 6144,
                       batch_size: int = DEFAULT_BATCH_SIZE) -> Embeddings:
    """Embeds the first audio stream of any file PyAV reads (audio or video).

    Args:
      path: the file.
      hop_seconds, center, embedding, batch_size: as in `embed_audio`.

    Raises:
      media.MediaError: unreadable file, no audio or no samples.
    """
    return _raise_or(self.embed_audio_files(
        [path], hop_seconds=hop_seconds, center=center, embedding=embedding,
        batch_size=batch_size)[0])

  def _load_audio(self, path: str) -> np.ndarray:
    recording = media.load_audio(path,
                                 sample_rate_hz=self.audio_params.sample_rate_hz)
    if recording.size == 0:
      raise media.MediaError(path, "the audio stream has no samples")
    return recording

  def embed_image_files(self, paths: Sequence[str | os.PathLike], *,
                        embedding: int | str = 8192,
                        batch_size: int = DEFAULT_BATCH_SIZE
                        ) -> list[Embeddings | Exception]:
    """Embeds image files (the first frame of anything PyAV reads); images
    of one size share network calls.

    Returns:
      Per path, in order: `Embeddings` with embedding [1, D] and timestamps
      [0.], or the exception that kept it from being embedded.
    """
    paths = [os.fspath(path) for path in paths]
    head = self._head(embedding, "image")
    check_options(batch_size=batch_size)
    results = [_try(media.frames_at, path, [0.0]) for path in paths]
    good = [i for i, r in enumerate(results) if not isinstance(r, Exception)]
    for i in good:  # results[i]: [1, h, w, 3]
      _warn_constant(_count_constant(results[i]), 1, paths[i])
    # Sorted by size so that images of one size go through the model together.
    good.sort(key=lambda i: results[i].shape[1:])
    embedded = self._embed_image_stacks([results[i] for i in good], head,
                                        batch_size)
    for i, vectors in zip(good, embedded):
      results[i] = Embeddings(vectors, np.zeros([1]))
    return results

  def embed_image_file(self, path: str | os.PathLike, *,
                       embedding: int | str = 8192) -> Embeddings:
    """Embeds an image file (the first frame of anything PyAV reads).

    Returns:
      `Embeddings` with embedding [1, D] and timestamps [0.].
    """
    return _raise_or(self.embed_image_files([path], embedding=embedding)[0])

  def video_timestamps(self, path: str | os.PathLike, *,
                       hop_seconds: float = DEFAULT_HOP_SECONDS,
                       center: bool = True) -> np.ndarray:
    """float64 [T]: the timestamps `embed_video` gives the video (those of
    its sound track's windows), without running the network."""
    path = os.fspath(path)
    check_options(hop_seconds=hop_seconds, center=center,
                  params=self.audio_params)
    starts = window_starts(self._load_audio(path).size, hop_seconds, center,
                           self.audio_params)
    return window_timestamps(starts, self.audio_params)

  def embed_video_frames(self, path: str | os.PathLike,
                         timestamps: np.ndarray, *,
                         embedding: int | str = 8192,
                         batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """float32 [T, D]: image embeddings of the frames shown at `timestamps`
    (seconds; the last frame after the end), decoded as for training."""
    head = self._head(embedding, "image")
    check_options(batch_size=batch_size)
    return _raise_or(self._embed_frames(
        [os.fspath(path)], [np.asarray(timestamps, np.float64)], head,
        batch_size)[0])

  def _embed_frames(self, paths: list[str], timestamps: list[np.ndarray],
                    head: _Head, batch_size: int
                    ) -> list[np.ndarray | Exception]:
    """Per video, float32 [T_i, D] embeddings of its frames at its
    timestamps [T_i] (or its exception). Frames are decoded
    `FRAMES_PER_DECODE` at a time and those of consecutive videos share
    network calls, so memory stays at about two decodes of frames."""
    results: list = [None] * len(paths)
    pieces = [[] for _ in paths]
    constant = [0] * len(paths)
    pending: list[tuple[int, np.ndarray]] = []  # (video, frames [n, h, w, 3])

    def run():
      embedded = self._embed_image_stacks([f for _, f in pending], head,
                                          batch_size)
      for (i, _), vectors in zip(pending, embedded):
        pieces[i].append(vectors)  # [n, D]
      pending.clear()

    for i, (path, times) in enumerate(zip(paths, timestamps)):
      try:
        if not media.probe(path).has_video:
          raise media.MediaError(path, "no video stream")
        for part in _batches(times.size, FRAMES_PER_DECODE):
          frames = media.frames_at(
              path, times[part], short_side=self.image_params.resize_short_side)
          constant[i] += _count_constant(frames)  # [n, h, w, 3]
          pending.append((i, frames))
          if sum(f.shape[0] for _, f in pending) >= FRAMES_PER_DECODE:
            run()
      except Exception as e:  # pylint: disable=broad-except
        results[i] = e  # this video only; the others go on
        pending[:] = [(j, f) for j, f in pending if j != i]
    run()
    for i, path in enumerate(paths):
      if results[i] is None:
        _warn_constant(constant[i], timestamps[i].size, path, "frames")
        results[i] = (np.concatenate(pieces[i]) if pieces[i] else
                      np.zeros((0, head.width), np.float32))
    return results

  def embed_video_files(self, paths: Sequence[str | os.PathLike], *,
                        hop_seconds: float = DEFAULT_HOP_SECONDS,
                        center: bool = True, audio_embedding: int | str = 6144,
                        image_embedding: int | str = 8192,
                        batch_size: int = DEFAULT_BATCH_SIZE
                        ) -> list[VideoEmbeddings | Exception]:
    """Aligned audio and image embeddings of video files, the windows (and
    the frames) of all videos sharing network calls.

    Arguments as in `embed_video`.

    Returns:
      Per path, in order: its `VideoEmbeddings`, or the exception that kept
      it from being embedded (`media.MediaError`: unreadable file, no audio
      or no video stream).

    Raises:
      ValueError: an argument outside its values (before any decoding).
    """
    paths = [os.fspath(path) for path in paths]
    image_head = self._head(image_embedding, "image")  # before any decoding
    check_options(hop_seconds=hop_seconds, center=center,
                  batch_size=batch_size, params=self.audio_params)
    audio_head = self._head(audio_embedding, "audio")
    results = [_try(check_has_video, path) for path in paths]
    good = [i for i, r in enumerate(results) if not isinstance(r, Exception)]
    audio = self._embed_audio_paths([paths[i] for i in good],
                                    hop_seconds=hop_seconds, center=center,
                                    head=audio_head, batch_size=batch_size)
    for i, result in zip(good, audio):
      results[i] = result
    good = [i for i in good if not isinstance(results[i], Exception)]
    images = self._embed_frames([paths[i] for i in good],
                                [results[i].timestamps for i in good],
                                image_head, batch_size)
    for i, image in zip(good, images):
      results[i] = image if isinstance(image, Exception) else VideoEmbeddings(
          results[i].embedding, image, results[i].timestamps)
    return results

  def embed_video(self, path: str | os.PathLike, *,
                  hop_seconds: float = DEFAULT_HOP_SECONDS,
                  center: bool = True, audio_embedding: int | str = 6144,
                  image_embedding: int | str = 8192,
                  batch_size: int = DEFAULT_BATCH_SIZE) -> VideoEmbeddings:
    """Aligned audio and image embeddings of a video file.

    The timestamps are those of `embed_audio` on the video's sound track; at
    each, the image embedding uses the frame displayed at that time.

    Args:
      path: a video with a sound track.
      hop_seconds: time between consecutive embeddings.
      center: window 0 centred on t=0 (see `embed_audio`).
      audio_embedding: 512 or 6144; "shared" (both "shared" for an AVE-Net's
        shared space, where sounds and frames compare directly).
      image_embedding: 512 or 8192; "shared".
      batch_size: windows or frames per network call.

    Raises:
      media.MediaError: unreadable file, no audio or no video stream.
    """
    return _raise_or(self.embed_video_files(
        [path], hop_seconds=hop_seconds, center=center,
        audio_embedding=audio_embedding, image_embedding=image_embedding,
        batch_size=batch_size)[0])


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
