"""Embeddings and correspondence scores from a trained L3-Net.

An `Embedder` is built once, from a SavedModel written by `l3_tf.serving.export` or
from a training workdir, and then embeds any number of waveforms, images and
files without reloading anything.

The audio windows, their timestamps and the checks of every input are in
`l3_tf.serving.embed_inputs` (its docstring states the window formula); the
file and video methods in `l3_tf.serving.embed_media`.

How video frames and images are resized: `l3_tf.serving.embed_inputs` too.

Inputs are checked at the door, and unusual ones warned about with an
`embed.EmbedWarning` subclass: `l3_tf.serving.embed_inputs` says how.
"""

import os
from typing import Callable, NamedTuple, Sequence

import numpy as np
import tensorflow as tf

from l3_tf.data import audio_params as audio_params_lib
from l3_tf.data import image_ops
from l3_tf.data import media_audio
from l3_tf.model import finite
from l3_tf.serving import embed_inputs
from l3_tf.serving import embed_media
from l3_tf.serving import export as export_lib
from l3_tf.training import workdir as workdir_lib

# The embedding API's public names that live with the input checks, where
# users have always found them (`embed.SHARED`, `embed.EmbedWarning`).
DEFAULT_HOP_SECONDS = embed_inputs.DEFAULT_HOP_SECONDS
DEFAULT_BATCH_SIZE = embed_inputs.DEFAULT_BATCH_SIZE
AUDIO_EMBEDDINGS = embed_inputs.AUDIO_EMBEDDINGS
IMAGE_EMBEDDINGS = embed_inputs.IMAGE_EMBEDDINGS
TRANSFER = embed_inputs.TRANSFER
SHARED = embed_inputs.SHARED
Embeddings = embed_inputs.Embeddings
VideoEmbeddings = embed_inputs.VideoEmbeddings
EmbedWarning = embed_inputs.EmbedWarning
ShortInputWarning = embed_inputs.ShortInputWarning
SilentInputWarning = embed_inputs.SilentInputWarning
ConstantImageWarning = embed_inputs.ConstantImageWarning


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
                                allowed_rows=embed_inputs._nonfinite_rows(batch))


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


class Embedder(embed_media.MediaFileMethods):
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
    embed_inputs.check_model_path(path)
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
    waveform = embed_inputs.to_mono(waveform)
    rate = self.audio_params.sample_rate_hz
    if int(sample_rate_hz) == rate:
      return waveform
    return np.asarray(media_audio.resample(waveform, int(sample_rate_hz), rate),
                      np.float32)

  def _head(self, embedding: int | str, modality: str) -> _Head:
    """The checked `embedding` of `modality` ("audio" / "image"): a tap
    size (`embedding_tap`) or `SHARED`.

    Raises:
      ValueError: not one of the modality's embeddings, or `SHARED` from a
        model without a shared space (an L3-Net).
    """
    if isinstance(embedding, str) and embedding == embed_inputs.SHARED:
      if export_lib.SHARED_AUDIO_EMBEDDING not in self.embedding_sizes:
        raise ValueError(f"{self.source}: {export_lib.NO_SHARED_SPACE}")
      key = export_lib.SHARED_OUTPUT
      function = {"audio": self._functions.shared_audio_embedding,
                  "image": self._functions.shared_image_embedding}[modality]
      return _Head(function, key, self.embedding_sizes[
          export_lib.SHARED_AUDIO_EMBEDDING][key], f"shared_{modality}_embedding",
                   self.source)
    size = embed_inputs.embedding_tap(embedding, modality)
    key = f"embedding_{size}"
    signature, function = {
        "audio": (export_lib.AUDIO_EMBEDDING, self._functions.audio_embedding),
        "image": (export_lib.IMAGE_EMBEDDING, self._functions.image_embedding),
    }[modality]
    return _Head(function, key, self.embedding_sizes[signature][key],
                 signature, self.source)

  def embed_windows(self, windows: np.ndarray, embedding: int | str = 6144,
                    batch_size: int = embed_inputs.DEFAULT_BATCH_SIZE) -> np.ndarray:
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
    for part in embed_inputs._batches(windows.shape[0], batch_size):
      out[part] = head(windows[part])  # [b, 48000] -> [b, D]
    return out

  def embed_audio(self, waveform: np.ndarray | Sequence[np.ndarray],
                  sample_rate_hz: int | Sequence[int], *,
                  hop_seconds: float = embed_inputs.DEFAULT_HOP_SECONDS,
                  center: bool = True, embedding: int | str = 6144,
                  batch_size: int = embed_inputs.DEFAULT_BATCH_SIZE
                  ) -> embed_inputs.Embeddings | list[embed_inputs.Embeddings]:
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
      embed_inputs.ShortInputWarning, embed_inputs.SilentInputWarning (both `EmbedWarning`).
    """
    items, single = embed_inputs._as_list(waveform, "waveform")
    rates = embed_inputs._rates(sample_rate_hz, len(items), single)
    names = ["waveform"] if single else [
        f"waveform[{i}]" for i in range(len(items))]
    mono = [embed_inputs.to_mono(item, name) for item, name in zip(items, names)]
    embed_inputs.check_options(hop_seconds=hop_seconds, center=center,
                  batch_size=batch_size, params=self.audio_params)
    head = self._head(embedding, "audio")
    results = self._embed_recordings(
        [self.resample(m, r) for m, r in zip(mono, rates)], names,
        hop_seconds=hop_seconds, center=center, head=head,
        batch_size=batch_size)
    return results[0] if single else results

  def _embed_recordings(self, recordings: list[np.ndarray], names: list[str],
                        *, hop_seconds: float, center: bool, head: _Head,
                        batch_size: int) -> list[embed_inputs.Embeddings]:
    """Checked mono 48 kHz recordings -> their embed_inputs.Embeddings, windows of all
    recordings batched together."""
    window = self.audio_params.clip_samples
    starts = []
    for recording, name in zip(recordings, names):
      embed_inputs._warn_audio(recording, name, self.audio_params)
      starts.append(embed_inputs.window_starts(recording.size, hop_seconds, center,
                                  self.audio_params))  # [T_i]
    ends = np.cumsum([s.size for s in starts])  # window i of all: item
    out = np.empty((int(ends[-1]) if ends.size else 0, head.width),
                   np.float32)
    # Windows are cut per batch, so memory stays at one batch of windows.
    for part in embed_inputs._batches(out.shape[0], batch_size):
      pieces, begin = [], part.start
      while begin < part.stop:
        item = int(np.searchsorted(ends, begin, side="right"))
        first = begin - (int(ends[item - 1]) if item else 0)
        take = min(part.stop, int(ends[item])) - begin
        pieces.append(embed_inputs.extract_windows(recordings[item],
                                      starts[item][first:first + take],
                                      window))
        begin += take
      out[part] = head(np.concatenate(pieces))  # [b, 48000] -> [b, D]
    offsets = np.concatenate([[0], ends]).astype(np.int64)
    return [embed_inputs.Embeddings(out[offsets[i]:offsets[i + 1]],
                       embed_inputs.window_timestamps(s, self.audio_params))
            for i, s in enumerate(starts)]

  def embed_images(self, images: np.ndarray | Sequence[np.ndarray], *,
                   embedding: int | str = 8192,
                   batch_size: int = embed_inputs.DEFAULT_BATCH_SIZE
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
      embed_inputs.ConstantImageWarning (an `EmbedWarning`).
    """
    items, single = embed_inputs._as_list(images, "images")
    names = ["images"] if single else [f"images[{i}]"
                                       for i in range(len(items))]
    head = self._head(embedding, "image")
    embed_inputs.check_options(batch_size=batch_size)
    stacks = []
    for item, name in zip(items, names):
      item = embed_inputs.to_rgb_uint8(item, name)
      if item.ndim == 3:
        item = item[np.newaxis]
      elif item.ndim != 4:
        raise ValueError(f"{name} shape={item.shape}: expected [h, w, c] or "
                         "[n, h, w, c]")
      stacks.append(item)  # [n_i, h, w, 3]
    for stack, name in zip(stacks, names):  # warn once all are valid
      embed_inputs._warn_constant(embed_inputs._count_constant(stack), stack.shape[0], name)
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
      for part in embed_inputs._batches(batch.shape[0], batch_size):
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
    image = embed_inputs.to_rgb_uint8(np.asarray(image if not single else image[np.newaxis]))
    window = self.audio_params.clip_samples
    if sample_rate_hz is not None:
      waveform = self.resample(waveform, sample_rate_hz)
      waveform = embed_inputs.extract_windows(waveform, np.zeros([1], np.int64), window)
    waveform = np.asarray(waveform, np.float32)
    if waveform.shape[-1] != window or waveform.ndim > 2:
      raise ValueError(f"waveform shape={waveform.shape}: expected [{window}] "
                       f"or [n, {window}] at {self.audio_params.sample_rate_hz}"
                       " Hz, or pass sample_rate_hz to resample a recording")
    waveform = waveform.reshape(-1, window)
    probability = self._functions.avc_score(
        tf.constant(image), tf.constant(waveform))["probability"].numpy()
    finite.check_outputs(probability, "avc_score probability", self.source,
                         allowed_rows=embed_inputs._nonfinite_rows(waveform))
    return probability[0] if single else probability

  def shared_embedding(self, *, images=None, windows=None,
                       batch_size: int = embed_inputs.DEFAULT_BATCH_SIZE) -> np.ndarray:
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
      return self.embed_images(np.asarray(images), embedding=embed_inputs.SHARED,
                               batch_size=batch_size)
    return self.embed_windows(windows, embedding=embed_inputs.SHARED, batch_size=batch_size)

  # -- files ----------------------------------------------------------------
  #
  # Each `*_files` method takes a list of paths and batches the windows (or
  # frames, or images) of all of them together for the network: what a
  # pipeline that embeds many small files needs. A file that cannot be read
  # gives its exception in its place in the returned list and the others are
  # embedded; the one-file methods are the same code with a list of one, and
  # raise that exception.
