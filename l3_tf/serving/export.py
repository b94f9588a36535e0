"""SavedModel export of a trained L3-Net with explicit serving signatures.

The export is a contract (STYLE.md §8). Three signatures, each with named
inputs and a dict of named outputs:

  audio_embedding(waveform: float32 [batch, 48000], mono, 48 kHz, in [-1, 1])
      -> {"embedding_512": [batch, W4], "embedding_6144": [batch, 12 * W4]}
  image_embedding(image: uint8 [batch, height, width, 3], any height/width)
      -> {"embedding_512": [batch, W4], "embedding_8192": [batch, 16 * W4]}
  avc_score(image: uint8 [batch, height, width, 3],
            waveform: float32 [batch, 48000])
      -> {"probability": [batch]}  P(the image and the sound correspond)

Hostile inputs: a waveform row holding NaN or inf gives NaN in every output
of that row (embeddings, probability), never a plausible number; the other
rows are unaffected. An all-zero image or silent waveform is a valid input.
A wrong dtype, a waveform that is not 48000 samples long, a batch of 0, or
image and waveform batches of different sizes raise `InvalidArgumentError`
in the caller; the loaded model stays usable.

An AVE-Net (`model.fusion = "distance"`) adds two signatures into its
shared, unit-norm audio-image space (`SHARED_SIGNATURES`):

  shared_audio_embedding(waveform: float32 [batch, 48000])
      -> {"shared_embedding": [batch, 128]}
  shared_image_embedding(image: uint8 [batch, height, width, 3])
      -> {"shared_embedding": [batch, 128]}

Nearest neighbours there answer "which sounds go with this image" (and
sound-to-sound, image-to-image). An L3 export has no such space: its
`assets/export.json` says so (`shared_space: null` and a note).

W4 is the width of the last conv block: 512 for the paper's network, 512 *
width_multiplier for a narrowed one. The output *names* stay those of the
full network (`embedding_6144` is 4 x 3 x W4 wide), so client code does not
change with the width; `assets/export.json` lists the actual sizes.

The front ends run inside the graph and are the library's own:
`audio_frontend.log_spectrogram` (waveform -> log-spectrogram) and
`image_ops.preprocess_for_eval` (short side to 256, central 224 crop,
[-1, 1]). Their constants, the training config and facts about the export
are recorded as assets:

  assets/config.json        the resolved training `Config`
  assets/audio_params.json  the audio front end (`AudioParams`)
  assets/image_params.json  the vision front end (`ImageParams`)
  assets/export.json        step, checkpoint, embedding sizes, signatures

Load with `tf.saved_model.load(path)`; the signatures are in `.signatures`
and the same functions are attributes (`loaded.audio_embedding(waveform)`).
"""

import dataclasses
import json
import os
import tempfile
import uuid

import keras
import numpy as np
import tensorflow as tf

from l3_tf.data import audio_frontend
from l3_tf.data import audio_params as audio_params_lib
from l3_tf.data import image_ops
from l3_tf.model import finite
from l3_tf.model import networks as model_lib
from l3_tf.platform import filesystems
from l3_tf.training import compiled_check
from l3_tf.training import config as config_lib
from l3_tf.training import workdir as workdir_lib

AUDIO_EMBEDDING = "audio_embedding"
IMAGE_EMBEDDING = "image_embedding"
AVC_SCORE = "avc_score"
SIGNATURES = (AUDIO_EMBEDDING, IMAGE_EMBEDDING, AVC_SCORE)
SHARED_AUDIO_EMBEDDING = "shared_audio_embedding"
SHARED_IMAGE_EMBEDDING = "shared_image_embedding"
SHARED_SIGNATURES = (SHARED_AUDIO_EMBEDDING, SHARED_IMAGE_EMBEDDING)
SHARED_OUTPUT = "shared_embedding"
NO_SHARED_SPACE = (
    "this model is L3-Net (model.fusion='concat'): its audio and image "
    "embeddings live in two different spaces and cannot be compared; only "
    "an AVE-Net export (model.fusion='distance') has shared_audio_embedding "
    "and shared_image_embedding")

AUDIO_TAPS = ("embedding_512", "embedding_6144")
IMAGE_TAPS = ("embedding_512", "embedding_8192")

CONFIG_ASSET = "config.json"
AUDIO_PARAMS_ASSET = "audio_params.json"
IMAGE_PARAMS_ASSET = "image_params.json"
EXPORT_ASSET = "export.json"

COMPUTE_DTYPES = ("float32", "bfloat16")


class L3Serving(tf.Module):
  """The serving functions of one AVC network, as a saveable `tf.Module`.

  Built around a float32 `avc_network`; used both for export and, unsaved,
  by `l3_tf.serving.embed.Embedder` when it reads a training workdir, so that the
  two paths compute with the same code.
  """

  def __init__(self, avc: keras.Model, config: config_lib.Config,
               compute_dtype: str = "float32", fold_batch_norm: bool = True):
    """Wraps a copy of `avc` made for inference.

    Args:
      avc: a float32 `model.avc_network` with trained weights.
      config: the training config the model was built with.
      compute_dtype: "float32", or "bfloat16" to run the convolutions in
        bfloat16 with float32 weights and outputs (faster on CPUs with AMX /
        AVX-512-bf16 and on accelerators; embeddings then differ from the
        float32 ones by ~1% relative).
      fold_batch_norm: fold each BN's moving statistics into the conv before
        it (see `batch_norm_folded`): the same function up to float rounding,
        and convolution + bias + ReLU then run as one fused kernel instead
        of four memory-bound passes over every activation.
    """
    super().__init__(name="l3_serving")
    if compute_dtype not in COMPUTE_DTYPES:
      raise ValueError(f"compute_dtype={compute_dtype!r}; expected one of "
                       f"{COMPUTE_DTYPES}")
    policy = "mixed_bfloat16" if compute_dtype == "bfloat16" else "float32"
    if fold_batch_norm and config.model.use_batch_norm:
      avc = batch_norm_folded(avc, config, policy)
    elif policy != "float32":
      avc = _rebuild(avc, config, config.model, policy)
    self.avc = avc
    self._vision, self._audio, _ = model_lib.towers_of(avc)
    self._config = config
    self.compute_dtype = compute_dtype
    self.batch_norm_folded = fold_batch_norm and config.model.use_batch_norm
    audio = config.audio
    waveform_spec = tf.TensorSpec([None, audio.clip_samples], tf.float32,
                                  name="waveform")
    image_spec = tf.TensorSpec([None, None, None, 3], tf.uint8, name="image")
    self.audio_embedding = tf.function(
        self._audio_embedding, input_signature=[waveform_spec])
    self.image_embedding = tf.function(
        self._image_embedding, input_signature=[image_spec])
    self.avc_score = tf.function(
        self._avc_score, input_signature=[image_spec, waveform_spec])
    self.has_shared_space = model_lib.has_shared_space(avc)
    if self.has_shared_space:
      self._projections = model_lib.projections_of(avc)
      self.shared_audio_embedding = tf.function(
          self._shared_audio_embedding, input_signature=[waveform_spec])
      self.shared_image_embedding = tf.function(
          self._shared_image_embedding, input_signature=[image_spec])

  def _spectrogram(self, waveform):
    # A loaded signature lets other lengths through; checked here, they fail
    # with this message rather than deep inside a pooling kernel.
    samples = self._config.audio.clip_samples
    check = tf.debugging.assert_equal(
        tf.shape(waveform)[1], samples,
        message=f"waveform: expected [batch, {samples}] samples (1 s at "
        f"{self._config.audio.sample_rate_hz} Hz)")
    with tf.control_dependencies([check]):
      waveform = tf.identity(waveform)
    return audio_frontend.log_spectrogram(
        waveform, self._config.audio)  # [batch, 257, 199, 1]

  def _image(self, image):
    return image_ops.preprocess_for_eval(
        image, self._config.image)  # [batch, 224, 224, 3]

  def _audio_embedding(self, waveform):
    taps = self._audio(self._spectrogram(waveform), training=False)
    return {k: _nan_where_not_finite(tf.cast(taps[k], tf.float32), waveform)
            for k in AUDIO_TAPS}

  def _image_embedding(self, image):
    taps = self._vision(self._image(image), training=False)
    return {k: tf.cast(taps[k], tf.float32) for k in IMAGE_TAPS}

  def _avc_score(self, image, waveform):
    tf.debugging.assert_equal(
        tf.shape(image)[0], tf.shape(waveform)[0],
        message="avc_score: image and waveform batches differ in size")
    logits = self.avc({"image": self._image(image),
                       "spectrogram": self._spectrogram(waveform)},
                      training=False)  # [batch, 2]
    probability = tf.nn.softmax(tf.cast(logits, tf.float32))[:, 1]
    return {"probability": _nan_where_not_finite(probability,
                                                 waveform)}  # [batch]

  def _shared_audio_embedding(self, waveform):
    pool4 = self._audio(self._spectrogram(waveform),
                        training=False)["embedding_512"]  # [batch, W4]
    shared = self._projections[1](pool4, training=False)  # [batch, 128]
    return {SHARED_OUTPUT: tf.cast(shared, tf.float32)}

  def _shared_image_embedding(self, image):
    pool4 = self._vision(self._image(image), training=False)["embedding_512"]
    shared = self._projections[0](pool4, training=False)  # [batch, 128]
    return {SHARED_OUTPUT: tf.cast(shared, tf.float32)}

  def signature_names(self) -> tuple[str, ...]:
    """The serving signatures of this model (AVE-Net: + the shared ones)."""
    return SIGNATURES + (SHARED_SIGNATURES if self.has_shared_space else ())

  def embedding_sizes(self) -> dict[str, dict[str, int]]:
    """{"audio_embedding": {"embedding_512": 512, ...}, ...} of this model."""
    vision = {k: int(self._vision.output[k].shape[-1]) for k in IMAGE_TAPS}
    audio = {k: int(self._audio.output[k].shape[-1]) for k in AUDIO_TAPS}
    sizes = {AUDIO_EMBEDDING: audio, IMAGE_EMBEDDING: vision}
    if self.has_shared_space:
      dim = int(self._projections[0].output.shape[-1])
      sizes.update({name: {SHARED_OUTPUT: dim} for name in SHARED_SIGNATURES})
    return sizes


def _nan_where_not_finite(outputs: tf.Tensor, waveform: tf.Tensor
                          ) -> tf.Tensor:
  """`outputs` [batch, ...] with NaN in the rows whose waveform is not finite.

  The front end and max-pooling can hide a NaN sample (the embedding looked
  normal); a NaN output tells the caller the input was bad.
  """
  finite = tf.reduce_all(tf.math.is_finite(waveform), axis=1)  # [batch]
  finite = tf.reshape(finite, [-1] + [1] * (outputs.shape.rank - 1))
  return tf.where(finite, outputs, tf.constant(np.nan, outputs.dtype))


def _build(config: config_lib.Config, model_config: model_lib.ModelConfig,
           policy: str) -> keras.Model:
  """An `avc_network` built under a Keras dtype policy."""
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy(policy)
  try:
    return model_lib.avc_network(model_config, config.image, config.audio)
  finally:
    keras.mixed_precision.set_global_policy(previous)


def _rebuild(avc: keras.Model, config: config_lib.Config,
             model_config: model_lib.ModelConfig, policy: str) -> keras.Model:
  """The same network under another dtype policy, with `avc`'s weights."""
  twin = _build(config, model_config, policy)
  twin.set_weights(avc.get_weights())
  return twin


def batch_norm_folded(avc: keras.Model, config: config_lib.Config,
                    policy: str = "float32") -> keras.Model:
  """An inference copy of `avc` with every BN folded into its conv.

  In inference BN is the affine map y = (x - mean) * s + beta with
  s = gamma / sqrt(var + epsilon), so conv(x, K) -> BN equals
  conv(x, K * s) + (beta - mean * s). The copy is the network's BN-free
  variant (`ModelConfig.use_batch_norm=False`: same layers, convs with a
  bias); the fold is computed in float64.

  Args:
    avc: a float32 `avc_network` with BN.
    config: its config.
    policy: Keras dtype policy of the copy ("float32" or "mixed_bfloat16").

  Returns:
    The folded `avc_network`; its outputs equal `avc`'s up to rounding.
  """
  folded = _build(config, dataclasses.replace(config.model,
                                              use_batch_norm=False), policy)
  for source, target in zip(model_lib.towers_of(avc),
                            model_lib.towers_of(folded)):
    for layer in source.layers:
      if isinstance(layer, keras.layers.Conv2D):
        bn = source.get_layer(f"{layer.name}_bn")
        gamma, beta, mean, variance = (
            np.asarray(w, np.float64) for w in bn.get_weights())
        scale = gamma / np.sqrt(variance + bn.epsilon)  # [c_out]
        kernel = np.asarray(layer.get_weights()[0], np.float64) * scale
        bias = beta - mean * scale
        target.get_layer(layer.name).set_weights(
            [kernel.astype(np.float32), bias.astype(np.float32)])
      elif layer.weights and not isinstance(
          layer, keras.layers.BatchNormalization):
        target.get_layer(layer.name).set_weights(layer.get_weights())
  return folded


def _json_dumps(value) -> str:
  return json.dumps(value, indent=2, sort_keys=True)


def _asset_texts(module: L3Serving, config: config_lib.Config,
                 step: int | None, checkpoint: str | None) -> dict[str, str]:
  export_info = {
      "format_version": 1,
      "signatures": list(module.signature_names()),
      "embedding_sizes": module.embedding_sizes(),
      "fusion": config.model.fusion,
      "shared_space": ({"dim": module.embedding_sizes()[
          SHARED_AUDIO_EMBEDDING][SHARED_OUTPUT], "metric": "euclidean",
                        "unit_norm": True}
                       if module.has_shared_space else None),
      "shared_space_note": None if module.has_shared_space else NO_SHARED_SPACE,
      "compute_dtype": module.compute_dtype,
      "batch_norm_folded": module.batch_norm_folded,
      "step": step,
      "checkpoint": checkpoint,
      "width_multiplier": config.model.width_multiplier,
  }
  return {
      CONFIG_ASSET: config_lib.to_json(config),
      AUDIO_PARAMS_ASSET: _json_dumps(config_lib.to_dict(config.audio)),
      IMAGE_PARAMS_ASSET: _json_dumps(config_lib.to_dict(config.image)),
      EXPORT_ASSET: _json_dumps(export_info),
  }


def export(avc: keras.Model, config: config_lib.Config, output_path: str, *,
           step: int | None = None, checkpoint: str | None = None,
           compute_dtype: str = "float32", fold_batch_norm: bool = True,
           overwrite: bool = False) -> str:
  """Writes a SavedModel of `avc` with the three serving signatures.

  The SavedModel is written next to `output_path` and renamed into place, so
  an interrupted export never leaves a half-written model at `output_path`.

  Args:
    avc: a float32 `model.avc_network` with trained weights.
    config: the config it was trained with (recorded in the assets).
    output_path: the SavedModel directory to create.
    step: the training step of the weights (recorded).
    checkpoint: the checkpoint the weights came from (recorded).
    compute_dtype: "float32" or "bfloat16" (see `L3Serving`).
    fold_batch_norm: fold BN into the convs (see `L3Serving`).
    overwrite: replace an existing `output_path`.

  Returns:
    `output_path`.

  Raises:
    FileExistsError: `output_path` exists and `overwrite` is False.
    finite.NonFiniteError: a weight of `avc`, or its logits of a probe
      pair, hold NaN or inf (`finite.check_model`): nothing is written.
  """
  filesystems.prepare(output_path, "output_path")
  finite.check_model(avc, f"checkpoint {checkpoint}" if checkpoint
                     else "the model to export")
  if tf.io.gfile.exists(output_path) and not overwrite:
    raise FileExistsError(f"{output_path} exists; pass overwrite=True "
                          "(--overwrite) to replace it")
  module = L3Serving(avc, config, compute_dtype, fold_batch_norm)
  parent = os.path.dirname(output_path if filesystems.is_url(output_path)
                           else os.path.abspath(output_path))
  tf.io.gfile.makedirs(parent)
  staging = f"{output_path.rstrip('/')}.tmp-{uuid.uuid4().hex[:8]}"
  with tempfile.TemporaryDirectory() as asset_dir:
    for name, text in _asset_texts(module, config, step, checkpoint).items():
      path = os.path.join(asset_dir, name)
      with open(path, "w") as f:
        f.write(text)
      # Tracked Asset attributes are copied into <export>/assets/<name>.
      setattr(module, f"asset_{name.split('.')[0]}", tf.saved_model.Asset(path))
    signatures = {name: getattr(module, name).get_concrete_function()
                  for name in module.signature_names()}
    tf.saved_model.save(module, staging, signatures=signatures)
  if tf.io.gfile.exists(output_path):
    tf.io.gfile.rmtree(output_path)
  tf.io.gfile.rename(staging, output_path)
  return output_path


def export_workdir(workdir: str, output_path: str, *,
                   checkpoint: str | None = None,
                   compute_dtype: str = "float32",
                   overwrite: bool = False, verify: bool = True) -> str:
  """Exports the latest (or the given) checkpoint of a training workdir.

  Args:
    workdir: a training workdir (see `l3_tf.training.workdir`).
    output_path: the SavedModel directory to create.
    checkpoint: a checkpoint prefix; default the latest in the workdir.
    compute_dtype: "float32" or "bfloat16" (see `L3Serving`).
    overwrite: replace an existing `output_path`.
    verify: reload the export and check every signature against the Keras
      model on a random batch (see `verify_export`).

  Returns:
    `output_path`.
  """
  filesystems.prepare(output_path, "output_path")  # before any work
  checkpoint = checkpoint or workdir_lib.latest_checkpoint(workdir)
  config, avc, step = workdir_lib.restore_avc_model(workdir, checkpoint)
  export(avc, config, output_path, step=step, checkpoint=checkpoint,
         compute_dtype=compute_dtype, overwrite=overwrite)
  if verify:
    tolerance = ROUND_OFF if compute_dtype == "float32" else None
    verify_export(output_path, avc, config, tolerance=tolerance)
  return output_path


def read_assets(path: str) -> dict:
  """The parsed JSON assets of an export: {"config": Config, "audio_params":
  AudioParams, "image_params": ImageParams, "export": dict}.

  Raises:
    FileNotFoundError: `path` is not an l3_tf export (an asset is missing).
  """
  def read(name):
    asset = os.path.join(path, "assets", name)
    if not tf.io.gfile.exists(asset):
      raise FileNotFoundError(
          f"{asset} does not exist: {path!r} is not an l3_tf SavedModel "
          "(write one with `python -m experiments.export`)")
    with tf.io.gfile.GFile(asset) as f:
      return json.load(f)

  return {
      "config": config_lib.from_dict(config_lib.Config, read(CONFIG_ASSET)),
      "audio_params": config_lib.from_dict(audio_params_lib.AudioParams,
                                           read(AUDIO_PARAMS_ASSET)),
      "image_params": config_lib.from_dict(image_ops.ImageParams,
                                           read(IMAGE_PARAMS_ASSET)),
      "export": read(EXPORT_ASSET),
  }


def signature_variables(loaded) -> list[tuple[str, np.ndarray]]:
  """(name, value) of every variable the signatures of a loaded export read,
  named through the first signature that reads it
  ("audio_embedding/conv1_1/kernel": the two towers' own names are alike).
  """
  named, seen = [], set()
  order = [name for name in SIGNATURES + SHARED_SIGNATURES
           if name in loaded.signatures]
  order += sorted(set(loaded.signatures) - set(order))
  for signature in order:
    for variable in loaded.signatures[signature].variables:
      if id(variable) not in seen:
        seen.add(id(variable))
        name = variable.name.split(":")[0]
        named.append((f"{signature}/{name}", variable.numpy()))
  return named


def is_saved_model(path: str) -> bool:
  return tf.io.gfile.exists(os.path.join(path, "saved_model.pb"))


def reference_inputs(config: config_lib.Config, batch: int = 3,
                     seed: int = 0) -> dict[str, np.ndarray]:
  """A random batch for checking an export: uint8 images of an odd size
  (so the in-graph resize and crop are exercised) and noisy tones."""
  rng = np.random.default_rng(seed)
  image = rng.integers(0, 256, (batch, 181, 263, 3), dtype=np.uint8)
  t = np.arange(config.audio.clip_samples) / config.audio.sample_rate_hz
  freqs = rng.uniform(200, 4000, (batch, 1))
  waveform = (0.5 * np.sin(2 * np.pi * freqs * t)
              + 0.1 * rng.standard_normal((batch, t.size)))
  return {"image": image, "waveform": waveform.astype(np.float32)}


def keras_reference_outputs(avc: keras.Model, config: config_lib.Config,
                            inputs: dict[str, np.ndarray],
                            with_logits: bool = False):
  """What each signature must return for `inputs`, computed eagerly from
  the Keras model and the library front ends (no `L3Serving` code).

  Returns:
    {signature: {output: array}}; with `with_logits`, also the AVC logits
    [batch, 2] behind "avc_score/probability": (outputs, logits).
  """
  vision, audio, _ = model_lib.towers_of(avc)
  image = image_ops.preprocess_for_eval(tf.constant(inputs["image"]),
                                        config.image)
  spectrogram = audio_frontend.log_spectrogram(
      tf.constant(inputs["waveform"]), config.audio)
  vision_taps = vision(image, training=False)
  audio_taps = audio(spectrogram, training=False)
  logits = avc({"image": image, "spectrogram": spectrogram}, training=False)
  outputs = {
      AUDIO_EMBEDDING: {k: audio_taps[k].numpy() for k in AUDIO_TAPS},
      IMAGE_EMBEDDING: {k: vision_taps[k].numpy() for k in IMAGE_TAPS},
      AVC_SCORE: {"probability": tf.nn.softmax(logits)[:, 1].numpy()},
  }
  if model_lib.has_shared_space(avc):
    vision_projection, audio_projection = model_lib.projections_of(avc)
    outputs[SHARED_AUDIO_EMBEDDING] = {SHARED_OUTPUT: audio_projection(
        audio_taps["embedding_512"], training=False).numpy()}
    outputs[SHARED_IMAGE_EMBEDDING] = {SHARED_OUTPUT: vision_projection(
        vision_taps["embedding_512"], training=False).numpy()}
  return (outputs, logits.numpy()) if with_logits else outputs


def flatten_outputs(outputs: dict[str, dict]) -> dict[str, np.ndarray]:
  """{signature: {output: array}} -> {"signature/output": array}."""
  return {f"{s}/{k}": v for s, o in outputs.items() for k, v in o.items()}


def probability_row_scales(logits: np.ndarray) -> dict[str, np.ndarray]:
  """`roundoff_ratios`' row scale of "avc_score/probability": softmax(l)[1]
  moves by at most 1/4 of l1 - l0's change, so sqrt(2) / 4 x ||l||."""
  return {f"{AVC_SCORE}/probability": np.sqrt(2) / 4 * np.linalg.norm(
      np.asarray(logits, np.float64), axis=-1)}


def signature_outputs(functions, inputs: dict[str, np.ndarray]
                      ) -> dict[str, dict]:
  """Runs every serving function on `inputs` (by keyword).

  Args:
    functions: name -> callable, e.g. `tf.saved_model.load(path).signatures`
      or `{name: getattr(l3_serving, name) for name in SIGNATURES}`.
    inputs: see `reference_inputs`.
  """
  image = tf.constant(inputs["image"])
  waveform = tf.constant(inputs["waveform"])
  arguments = {AUDIO_EMBEDDING: {"waveform": waveform},
               IMAGE_EMBEDDING: {"image": image},
               AVC_SCORE: {"image": image, "waveform": waveform},
               SHARED_AUDIO_EMBEDDING: {"waveform": waveform},
               SHARED_IMAGE_EMBEDDING: {"image": image}}
  names = SIGNATURES + tuple(n for n in SHARED_SIGNATURES if n in functions)
  return {name: {k: v.numpy()
                 for k, v in functions[name](**arguments[name]).items()}
          for name in names}


# `verify_export(tolerance=ROUND_OFF)`: the float32 round-off bound.
ROUND_OFF = "round-off"


def verify_export(path: str, avc: keras.Model, config: config_lib.Config,
                  tolerance: float | str | None = ROUND_OFF,
                  loaded=None) -> dict[str, float]:
  """Reloads an export and compares every signature with the Keras model.

  The export and the Keras model run the same network in other kernels,
  orders and fusions (graph and eager execution even resize the image
  differently, by ~5e-7), so they agree within round-off, not bit for bit.
  Each output row (one example) must lie within `bound` of the Keras one,
  normwise relative: ||got - expected|| <= bound x ||expected||; the AVC
  probability, softmax(l)[1], within sqrt(2) / 4 x bound x ||l|| of it (its
  slope is at most 1/4 in l1 - l0).

  Args:
    path: the SavedModel.
    avc: the float32 Keras model it was exported from.
    config: its config.
    tolerance: `ROUND_OFF` (default): the round-off bound of two evaluations
      of this network, `compiled_check.forward_bound(avc)` (derived from its
      depth and widest sum, not from any one machine's error); a float: that
      bound instead; None: only report (the ratios to the round-off bound).
    loaded: `tf.saved_model.load(path)` if the caller has it already.

  Returns:
    Per "signature/output" (e.g. "avc_score/probability"), the largest
    ratio of a row's difference to what the bound allows (<= 1 passes).

  Raises:
    ValueError: an output differs by more than allowed (named with its ratio
      and the bound).
  """
  inputs = reference_inputs(config)
  expected, logits = keras_reference_outputs(avc, config, inputs,
                                             with_logits=True)
  loaded = loaded if loaded is not None else tf.saved_model.load(path)
  got = signature_outputs(loaded.signatures, inputs)
  if tolerance in (ROUND_OFF, None):
    bound = compiled_check.forward_bound(avc)
  else:
    bound = float(tolerance)
  ratios = compiled_check.roundoff_ratios(
      flatten_outputs(expected), flatten_outputs(got), bound,
      probability_row_scales(logits))
  if tolerance is not None:
    bad = {k: round(v, 3) for k, v in ratios.items() if not v <= 1.0}
    if bad:
      raise ValueError(
          f"export {path} differs from the Keras model by more than "
          f"round-off (bound {bound:.3g} normwise per example; ratio to "
          f"the allowed difference per output): {bad}")
  return ratios
