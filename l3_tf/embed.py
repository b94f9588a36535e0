"""Embeddings and correspondence scores from a trained L3-Net.

An `Embedder` is built once, from a SavedModel written by `l3_tf.export` or
from a training workdir, and then embeds any number of waveforms, images and
files without reloading anything.

Timestamps (seconds) always mean the same thing:

* Audio: the timestamp of an embedding is the CENTRE of its 1-second window,
  in the time of the input recording (t = 0 is its first sample). Window k
  covers [t_k - 0.5 s, t_k + 0.5 s); samples outside the recording are zeros.
  - `center=True` (default): t_k = k * hop, k = 0, 1, ... The first window
    is centred on t = 0 (half a window of zeros precedes the recording).
  - `center=False`: t_k = 0.5 s + k * hop; every window starts inside the
    recording.
  Windows are taken while they end inside the recording (the centred one
  after its half window of leading zeros), so a recording of D seconds gives
  1 + floor((D + pad - 1 s) / hop) windows with pad = 0.5 s (`center`) or 0,
  and always at least one (zero-padded at the end). The hop is rounded to a
  whole number of samples at 48 kHz; timestamps are exact for that hop.
* A video's audio and image embeddings share one timestamps array, the
  audio windows' centres: the image embedding at t uses the frame displayed
  at t (the last frame whose presentation time is <= t; the last frame of
  the video after its end), the audio embedding at t the 1-second window
  centred on t. Time 0 is the container's start (`l3_tf.media`).
* An image file has one embedding with timestamp 0.

Video frames are resized to a short side of 256 (`ImageParams.
resize_short_side`) by `l3_tf.media` while decoding, with the resize that
made the training frames (which were then stored as JPEG); the model then
crops the central 224 x 224. Images given as arrays or image files are
resized inside the model from their own size.
"""

from typing import NamedTuple, Sequence

import numpy as np
import tensorflow as tf

from l3_tf import audio_params as audio_params_lib
from l3_tf import export as export_lib
from l3_tf import image_ops
from l3_tf import media
from l3_tf import workdir as workdir_lib

DEFAULT_HOP_SECONDS = 0.1
DEFAULT_BATCH_SIZE = 32
# Frames decoded per `media.frames_at` call when embedding a video: bounds
# the memory of decoded frames (each call decodes from the start again).
FRAMES_PER_DECODE = 256
AUDIO_EMBEDDINGS = (512, 6144)
IMAGE_EMBEDDINGS = (512, 8192)


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


def hop_samples(hop_seconds: float,
                params: audio_params_lib.AudioParams = audio_params_lib.DEFAULT
                ) -> int:
  """The hop in whole samples at the model's rate (>= 1)."""
  if not hop_seconds > 0:
    raise ValueError(f"hop_seconds={hop_seconds} must be > 0")
  hop = int(round(hop_seconds * params.sample_rate_hz))
  if hop < 1:
    raise ValueError(f"hop_seconds={hop_seconds} is shorter than one sample "
                     f"at {params.sample_rate_hz} Hz")
  return hop


def window_starts(num_samples: int, hop_seconds: float, center: bool,
                  params: audio_params_lib.AudioParams = audio_params_lib.DEFAULT
                  ) -> np.ndarray:
  """First sample of each 1-second window of a recording (may be < 0).

  Args:
    num_samples: length of the recording at `params.sample_rate_hz`.
    hop_seconds: the hop between windows.
    center: pad half a window at the start so window 0 is centred on t=0.
    params: the audio front end (window length and rate).

  Returns:
    int64 [T] window starts, relative to the recording's first sample.
  """
  window = params.clip_samples
  hop = hop_samples(hop_seconds, params)
  pad = window // 2 if center else 0
  padded = num_samples + pad
  count = 1 if padded < window else 1 + (padded - window) // hop
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


def to_mono(waveform: np.ndarray) -> np.ndarray:
  """float32 [samples]: `waveform` [samples] or [samples, channels] averaged.

  Raises:
    ValueError: not a floating-point array of rank 1 or 2.
  """
  waveform = np.asarray(waveform)
  if not np.issubdtype(waveform.dtype, np.floating):
    raise ValueError(f"waveform dtype={waveform.dtype}: expected float "
                     "samples in [-1, 1] (divide int16 PCM by 32768)")
  if waveform.ndim == 2:
    waveform = waveform.mean(axis=1)
  elif waveform.ndim != 1:
    raise ValueError(f"waveform shape={waveform.shape}: expected [samples] "
                     "or [samples, channels]")
  return waveform.astype(np.float32, copy=False)


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
  """[..., h, w, c] uint8 with c in {1, 3, 4} -> [..., h, w, 3] uint8."""
  image = np.asarray(image)
  if image.dtype != np.uint8:
    raise ValueError(f"image dtype={image.dtype}: expected uint8 pixels")
  if image.ndim < 3:
    raise ValueError(f"image shape={image.shape}: expected [h, w, channels]")
  channels = image.shape[-1]
  if channels == 1:
    return np.repeat(image, 3, axis=-1)
  if channels == 4:
    return image[..., :3]
  if channels != 3:
    raise ValueError(f"image shape={image.shape}: expected 1, 3 or 4 channels")
  return image


def _tap(embedding: int | str, allowed: tuple[int, ...], modality: str) -> str:
  size = int(str(embedding).removeprefix("embedding_"))
  if size not in allowed:
    raise ValueError(f"embedding={embedding!r} but the {modality} "
                     f"embeddings are {list(allowed)}")
  return f"embedding_{size}"


def _batches(count: int, batch_size: int):
  if batch_size < 1:
    raise ValueError(f"batch_size={batch_size} must be >= 1")
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
    """
    if export_lib.is_saved_model(path):
      assets = export_lib.read_assets(path)
      if compute_dtype != assets["export"]["compute_dtype"] and (
          compute_dtype != "float32"):
        raise ValueError(
            f"compute_dtype={compute_dtype!r} but {path} was exported with "
            f"{assets['export']['compute_dtype']!r}; re-export with "
            "--compute_dtype")
      return cls(tf.saved_model.load(path), assets["audio_params"],
                 assets["image_params"], assets["export"]["embedding_sizes"],
                 path)
    if tf.io.gfile.exists(workdir_lib.config_path(path)):
      config, avc, _ = workdir_lib.restore_avc_model(path)
      return cls.from_model(avc, config, path, compute_dtype)
    raise FileNotFoundError(
        f"{path!r} is neither an l3_tf SavedModel (no saved_model.pb) nor a "
        f"training workdir (no {workdir_lib.CONFIG_FILENAME})")

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

  def embed_windows(self, windows: np.ndarray, embedding: int | str = 6144,
                    batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """float32 [n, D]: embeddings of n 1-second windows [n, 48000] at 48 kHz."""
    key = _tap(embedding, AUDIO_EMBEDDINGS, "audio")
    windows = np.asarray(windows, np.float32)
    size = self.embedding_sizes[export_lib.AUDIO_EMBEDDING][key]
    out = np.empty((windows.shape[0], size), np.float32)
    for part in _batches(windows.shape[0], batch_size):
      batch = tf.constant(windows[part])  # [b, 48000]
      out[part] = self._functions.audio_embedding(batch)[key].numpy()
    return out

  def embed_audio(self, waveform: np.ndarray, sample_rate_hz: int, *,
                  hop_seconds: float = DEFAULT_HOP_SECONDS,
                  center: bool = True, embedding: int | str = 6144,
                  batch_size: int = DEFAULT_BATCH_SIZE) -> Embeddings:
    """Embeds 1-second windows of a recording every `hop_seconds`.

    Args:
      waveform: float [samples] or [samples, channels] in [-1, 1] at
        `sample_rate_hz`; channels are averaged, then resampled to 48 kHz.
      sample_rate_hz: the rate of `waveform`.
      hop_seconds: time between consecutive windows.
      center: pad half a window at the start (window 0 centred on t=0).
      embedding: 512 (pool4) or 6144 (conv4_2 before ReLU, pooled).
      batch_size: windows per network call.

    Returns:
      `Embeddings` with timestamps = window centres (module docstring).
    """
    waveform = self.resample(waveform, sample_rate_hz)  # [samples at 48 kHz]
    starts = window_starts(waveform.size, hop_seconds, center,
                           self.audio_params)  # [T]
    key = _tap(embedding, AUDIO_EMBEDDINGS, "audio")
    size = self.embedding_sizes[export_lib.AUDIO_EMBEDDING][key]
    out = np.empty((starts.size, size), np.float32)
    window = self.audio_params.clip_samples
    # Windows are cut per batch, so memory stays at one batch of windows.
    for part in _batches(starts.size, batch_size):
      windows = extract_windows(waveform, starts[part], window)  # [b, 48000]
      out[part] = self._functions.audio_embedding(tf.constant(windows))[
          key].numpy()
    return Embeddings(out, window_timestamps(starts, self.audio_params))

  def embed_images(self, images: np.ndarray | Sequence[np.ndarray], *,
                   embedding: int | str = 8192,
                   batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """float32 [n, D]: embeddings of uint8 images (any size; resized and
    centre-cropped in the model).

    Args:
      images: uint8 [n, h, w, c] or [h, w, c], or a list of [h, w, c] of
        different sizes; c in {1, 3, 4}.
      embedding: 512 (pool4) or 8192 (conv4_2 after ReLU, pooled).
      batch_size: images per network call.
    """
    key = _tap(embedding, IMAGE_EMBEDDINGS, "image")
    if isinstance(images, np.ndarray) and images.ndim == 3:
      images = images[np.newaxis]
    if isinstance(images, np.ndarray):
      groups = [to_rgb_uint8(images)]
    else:  # consecutive images of one size go through the model together
      groups = []
      for image in images:
        image = to_rgb_uint8(image)
        if groups and groups[-1][-1].shape == image.shape:
          groups[-1].append(image)
        else:
          groups.append([image])
      groups = [np.stack(group) for group in groups]
    outputs = []
    for group in groups:  # [n, h, w, 3]
      for part in _batches(group.shape[0], batch_size):
        outputs.append(self._functions.image_embedding(
            tf.constant(group[part]))[key].numpy())
    size = self.embedding_sizes[export_lib.IMAGE_EMBEDDING][key]
    return np.concatenate(outputs) if outputs else np.zeros((0, size),
                                                            np.float32)

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
    image = to_rgb_uint8(image if not single else image[np.newaxis])
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
    if export_lib.SHARED_AUDIO_EMBEDDING not in self.embedding_sizes:
      raise ValueError(f"{self.source}: {export_lib.NO_SHARED_SPACE}")
    key = export_lib.SHARED_OUTPUT
    if images is not None:
      images = np.asarray(images)
      images = to_rgb_uint8(images[np.newaxis] if images.ndim == 3 else images)
      inputs, function = images, self._functions.shared_image_embedding
    else:
      inputs = np.asarray(windows, np.float32)
      inputs = inputs[np.newaxis] if inputs.ndim == 1 else inputs
      window = self.audio_params.clip_samples
      if inputs.ndim != 2 or inputs.shape[1] != window:
        raise ValueError(f"windows shape={np.shape(windows)}: expected "
                         f"[n, {window}] at {self.audio_params.sample_rate_hz}"
                         " Hz")
      function = self._functions.shared_audio_embedding
    size = self.embedding_sizes[export_lib.SHARED_AUDIO_EMBEDDING][key]
    out = np.empty((inputs.shape[0], size), np.float32)
    for part in _batches(inputs.shape[0], batch_size):
      out[part] = function(tf.constant(inputs[part]))[key].numpy()
    return out

  # -- files ----------------------------------------------------------------

  def embed_audio_file(self, path: str, **kwargs) -> Embeddings:
    """Embeds the first audio stream of any file PyAV reads (audio or video).

    Args:
      path: the file.
      **kwargs: `hop_seconds`, `center`, `embedding`, `batch_size` as in
        `embed_audio`.

    Raises:
      media.MediaError: unreadable file or no audio.
    """
    rate = self.audio_params.sample_rate_hz
    return self.embed_audio(media.load_audio(path, sample_rate_hz=rate), rate,
                            **kwargs)

  def embed_image_file(self, path: str, *, embedding: int | str = 8192
                       ) -> Embeddings:
    """Embeds an image file (the first frame of anything PyAV reads).

    Returns:
      `Embeddings` with embedding [1, D] and timestamps [0.].
    """
    image = media.frames_at(path, [0.0])  # [1, h, w, 3]
    return Embeddings(self.embed_images(image, embedding=embedding),
                      np.zeros([1]))

  def embed_video(self, path: str, *,
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
      audio_embedding: 512 or 6144.
      image_embedding: 512 or 8192.
      batch_size: windows or frames per network call.

    Raises:
      media.MediaError: unreadable file, no audio or no video stream.
    """
    if not media.probe(path).has_video:
      raise media.MediaError(path, "no video stream")
    audio = self.embed_audio_file(path, hop_seconds=hop_seconds, center=center,
                                  embedding=audio_embedding,
                                  batch_size=batch_size)
    timestamps = audio.timestamps
    images = []
    for part in _batches(timestamps.size, FRAMES_PER_DECODE):
      frames = media.frames_at(path, timestamps[part],
                               short_side=self.image_params.resize_short_side)
      images.append(self.embed_images(frames, embedding=image_embedding,
                                      batch_size=batch_size))
    return VideoEmbeddings(audio.embedding, np.concatenate(images), timestamps)
