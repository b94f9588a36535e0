"""The trained towers in the runtimes users deploy to: LiteRT, ONNX, .keras.

`export.py` writes the SavedModel (TF Serving, Python). This module writes,
from the same training workdir, one file per tower and format:

  LiteRT (`.tflite`, run with the `ai-edge-litert` interpreter)
    audio_tower_waveform_<q>.tflite     signature "audio_embedding"
        waveform: float32 [batch, 48000] -> embedding_512, embedding_6144
    audio_tower_spectrogram_<q>.tflite  signature "audio_embedding"
        spectrogram: float32 [batch, 257, 199, 1] -> the same taps
    vision_tower_<q>.tflite             signature "image_embedding"
        image: uint8 [batch, 224, 224, 3] RGB, already resized and cropped
        -> embedding_512, embedding_8192
    <q> is the quantisation: float32, dynamic_int8 (int8 weights, float
    activations) or int8 (full-integer: weights and activations, calibrated
    on a representative set; float32 inputs and outputs, so callers do not
    change).
  ONNX (`.onnx`, opset `ONNX_OPSET`, run with onnxruntime): the same towers
    and input / output names, float32.
  Keras (`.keras`, `keras.saving.load_model(path)` with no custom objects):
    audio_tower.keras, vision_tower.keras (spectrogram / [-1, 1] image in,
    the model's dict of taps out) and avc_network.keras, with BN, for
    fine-tuning.

The output names and their widths are those of the SavedModel
(`export.AUDIO_TAPS`, `export.IMAGE_TAPS`; W4-wide for a narrowed network).
Converted towers have their BN folded into the convs (`export.
batch_norm_folded`). The waveform towers compute the log-spectrogram with
`portable_log_spectrogram`: the STFT as one strided convolution with a
windowed DFT basis, because neither converter handles `tf.signal.stft`
(TFLite has no complex ops; tf2onnx 1.17 fails on ComplexAbs).

Every directory written here holds `export_manifest.json`: for each file,
its format, tower, input, quantisation, signature and output sizes, and the
workdir and checkpoint it came from. `l3_tf.serving.export_check` reads it
to compare a file with its source model (`python -m experiments.export
--check=PATH`).

The converters and runtimes are the `export` extra, imported lazily here
and nowhere else (`require`).
"""

import dataclasses
import importlib
import json
import os
import tempfile
from typing import Any, Callable, Iterable

import keras
import numpy as np
import tensorflow as tf

from l3_tf.data import audio_frontend
from l3_tf.data import audio_params as audio_params_lib
from l3_tf.data import image_ops
from l3_tf.model import networks as model_lib
from l3_tf.serving import export as export_lib
from l3_tf.training import config as config_lib
from l3_tf.training import workdir as workdir_lib

EXTRA = "pip install 'l3_tf[export]'"
FORMATS = ("saved_model", "litert", "onnx", "keras")
QUANTIZATIONS = ("float32", "dynamic_int8", "int8")
AUDIO_INPUTS = ("waveform", "spectrogram")
# Opset 17: the oldest with every op the towers need on onnxruntime >= 1.17.
ONNX_OPSET = 17
MANIFEST = "export_manifest.json"
# Pass/fail rules of `check`: float32 files within the network's round-off
# bound per example (`compiled_check.forward_bound`, as the SavedModel's own
# check); quantised files by the smallest cosine similarity of an embedding
# row to float32.
MIN_COSINE = {"dynamic_int8": 0.98, "int8": 0.9}
_TOWER_FILES = {"audio": "audio_tower", "vision": "vision_tower",
                "avc": "avc_network"}


class MissingExtraError(ImportError):
  """A converter or runtime of the `export` extra is not importable."""


def require(module: str):
  """Imports `module` of the `export` extra, or says which extra to install.

  Raises:
    MissingExtraError: the module (or one it needs) does not import.
  """
  try:
    return importlib.import_module(module)
  except (ImportError, AttributeError) as e:
    # AttributeError: onnx >= 1.18 imports but fails on the ml_dtypes 0.3
    # that TF 2.16 pins (setup.py bounds onnx below 1.18 on that stack).
    raise MissingExtraError(
        f"{module} is needed to convert or check this format but does not "
        f"import ({type(e).__name__}: {e}); install the extra: {EXTRA}"
    ) from e


# --- the front end every converter can take --------------------------------


def dft_basis(params: audio_params_lib.AudioParams) -> np.ndarray:
  """`[window, 2 * bins]` periodic-Hann-windowed DFT basis (real | imag).

  A frame zero-padded to `fft_length` has the DFT
  X[k] = sum_{n < window} w[n] x[n] exp(-2 pi i k n / fft_length), so the
  padding needs no samples: the basis has `window_length_samples` rows.
  """
  n = np.arange(params.window_length_samples)
  window = 0.5 - 0.5 * np.cos(2 * np.pi * n / params.window_length_samples)
  angle = 2 * np.pi * np.outer(n, np.arange(params.num_bins)) / params.fft_length
  return np.concatenate([window[:, None] * np.cos(angle),
                         -window[:, None] * np.sin(angle)],
                        axis=1).astype(np.float32)  # [480, 514]


def portable_log_spectrogram(
    waveform: tf.Tensor,
    params: audio_params_lib.AudioParams = audio_params_lib.DEFAULT
) -> tf.Tensor:
  """`audio_frontend.log_spectrogram` with real-valued ops only.

  The STFT is one VALID convolution with `dft_basis` at stride
  `hop_length_samples`; it matches the FFT version to float32 round-off
  (tested element by element against a float64 STFT, within the float32
  error bound of a dot product over the window).

  Args:
    waveform: float32 `[batch, clip_samples]` in [-1, 1].
    params: the front-end constants.

  Returns:
    float32 `[batch, 257, 199, 1]`.
  """
  bins = params.num_bins
  x = tf.reshape(waveform, [-1, params.clip_samples, 1])  # [b, 48000, 1]
  spectrum = tf.nn.conv1d(x, dft_basis(params)[:, None, :],
                          stride=params.hop_length_samples,
                          padding="VALID")  # [b, 199, 514]
  real, imag = spectrum[..., :bins], spectrum[..., bins:]
  magnitude = tf.sqrt(real * real + imag * imag)  # [b, 199, 257]
  log_mag = params.log_scale * tf.math.log(magnitude + params.log_offset)
  return tf.expand_dims(tf.transpose(log_mag, [0, 2, 1]), -1)  # [b, 257, 199, 1]


# --- what each converted file computes --------------------------------------


@dataclasses.dataclass(frozen=True)
class Tower:
  """One convertible tower function.

  Attributes:
    model: "audio" or "vision".
    input: the input name ("waveform", "spectrogram" or "image").
    signature: the LiteRT signature name (the SavedModel's for this tower).
    spec: the input's `tf.TensorSpec` (free batch).
    taps: the output names.
  """

  model: str
  input: str
  signature: str
  spec: tf.TensorSpec
  taps: tuple[str, ...]

  @property
  def stem(self) -> str:
    base = _TOWER_FILES[self.model]
    return base if self.model == "vision" else f"{base}_{self.input}"


def towers(config: config_lib.Config) -> dict[str, Tower]:
  """{"audio_waveform", "audio_spectrogram", "vision"} -> `Tower`."""
  audio, crop = config.audio, config.image.crop_size
  return {
      "audio_waveform": Tower(
          "audio", "waveform", export_lib.AUDIO_EMBEDDING,
          tf.TensorSpec([None, audio.clip_samples], tf.float32, "waveform"),
          export_lib.AUDIO_TAPS),
      "audio_spectrogram": Tower(
          "audio", "spectrogram", export_lib.AUDIO_EMBEDDING,
          tf.TensorSpec([None, *audio.spectrogram_shape], tf.float32,
                        "spectrogram"), export_lib.AUDIO_TAPS),
      "vision": Tower(
          "vision", "image", export_lib.IMAGE_EMBEDDING,
          tf.TensorSpec([None, crop, crop, 3], tf.uint8, "image"),
          export_lib.IMAGE_TAPS),
  }


def tower_function(avc: keras.Model, config: config_lib.Config,
                   tower: Tower, portable: bool = True) -> Callable:
  """The eager function a converted `tower` computes, from `avc`'s towers.

  Args:
    avc: an `avc_network` (BN folded or not).
    config: its config.
    tower: which tower and input.
    portable: the waveform front end by `portable_log_spectrogram` (what
      the converted files run) or by `audio_frontend.log_spectrogram` (what
      the SavedModel runs: the reference).

  Returns:
    A function of the input tensor returning {tap: float32 tensor}.
  """
  vision, audio, _ = model_lib.towers_of(avc)
  frontend = (portable_log_spectrogram if portable
              else audio_frontend.log_spectrogram)

  def run(x):
    if tower.input == "waveform":
      taps = audio(frontend(x, config.audio), training=False)
    elif tower.input == "spectrogram":
      taps = audio(x, training=False)
    else:
      image = image_ops.scale_to_symmetric_range(
          image_ops.to_float_rgb(x))  # [b, 224, 224, 3] in [-1, 1]
      taps = vision(image, training=False)
    return {k: tf.cast(taps[k], tf.float32) for k in tower.taps}

  return run


def _frozen_saved_model(function: Callable, tower: Tower, path: str) -> None:
  """Saves `function` as a variable-free SavedModel with one signature.

  The TFLite converter of TF 2.16 cannot read Keras 3 variables ("missing
  attribute 'value'"), so the weights become graph constants first.
  """
  from tensorflow.python.framework import convert_to_constants  # pylint: disable=g-direct-tensorflow-import

  traced = tf.function(function, input_signature=[tower.spec])
  concrete = traced.get_concrete_function()
  frozen = convert_to_constants.convert_variables_to_constants_v2(concrete)
  structure = concrete.structured_outputs

  def serve(x):
    return tf.nest.pack_sequence_as(structure, frozen(x))

  module = tf.Module()
  module.serve = tf.function(serve, input_signature=[tower.spec])
  tf.saved_model.save(module, path, signatures={
      tower.signature: module.serve.get_concrete_function()})


def to_litert(function: Callable, tower: Tower, quantization: str = "float32",
              representative: Iterable[np.ndarray] | None = None) -> bytes:
  """Converts a tower function to a LiteRT flatbuffer.

  Args:
    function: see `tower_function`.
    tower: its tower.
    quantization: one of `QUANTIZATIONS`.
    representative: for "int8", calibration inputs, each `[1, ...]` of the
      tower's input dtype and shape (see `calibration_inputs`).

  Raises:
    ValueError: unknown quantisation, or "int8" without calibration inputs.
  """
  if quantization not in QUANTIZATIONS:
    raise ValueError(f"quantization={quantization!r}; expected one of "
                     f"{QUANTIZATIONS}")
  if quantization == "int8" and representative is None:
    raise ValueError("quantization='int8' needs calibration inputs "
                     "(--calibration_dataset)")
  with tempfile.TemporaryDirectory() as staging:
    _frozen_saved_model(function, tower, staging)
    converter = tf.lite.TFLiteConverter.from_saved_model(
        staging, signature_keys=[tower.signature])
    if quantization != "float32":
      converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "int8":
      samples = [np.asarray(x) for x in representative]
      if not samples:
        raise ValueError("quantization='int8': the calibration set is empty")
      converter.representative_dataset = lambda: (
          {tower.input: x} for x in samples)
    return converter.convert()


def to_onnx(function: Callable, tower: Tower, path: str,
            opset: int = ONNX_OPSET) -> None:
  """Converts a tower function to ONNX with tf2onnx (input/outputs named)."""
  tf2onnx = require("tf2onnx")
  traced = tf.function(function, input_signature=[tower.spec])
  tf2onnx.convert.from_function(traced, input_signature=[tower.spec],
                                opset=opset, output_path=path)


# --- calibration data --------------------------------------------------------


def calibration_inputs(dataset: str, data_dir: str | None, split: str,
                       config: config_lib.Config, num_samples: int = 64
                       ) -> dict[str, list[np.ndarray]]:
  """Representative tower inputs from a built video dataset's split.

  Reads videos in stored order and takes, from each, consecutive 1-second
  windows and the frame at each window's start, until `num_samples`.

  Args:
    dataset: a prepared TFDS video dataset (e.g. "video_folder/NAME").
    data_dir: its TFDS data dir.
    split: e.g. "train".
    config: the model's config (front ends).
    num_samples: inputs per tower.

  Returns:
    {"waveform": [[1, 48000] float32], "spectrogram": [[1, 257, 199, 1]],
     "image": [[1, 224, 224, 3] uint8]}, `num_samples` each (fewer if the
    split is shorter).

  Raises:
    input_pipeline.DatasetError: the dataset or split is not there.
  """
  from l3_tf.data import input_pipeline

  if num_samples < 1:
    raise ValueError(f"num_samples={num_samples} must be >= 1")
  builder = input_pipeline.load_builder(dataset, data_dir)
  input_pipeline.check_split(builder, split, min_videos=1)
  window = config.audio.clip_samples
  samples = {"waveform": [], "spectrogram": [], "image": []}
  for video in input_pipeline.read_videos(builder, split):
    audio = video["audio"].numpy().astype(np.float32) / 32768.0
    times = video["frame_times"].numpy()
    for start in range(0, audio.size - window + 1, window):
      if len(samples["waveform"]) == num_samples or not len(times):
        break
      waveform = audio[None, start:start + window]  # [1, 48000]
      frame_index = int(np.argmin(np.abs(times - start / window)))
      frame = tf.io.decode_jpeg(video["frames"][frame_index], channels=3)
      image = image_ops.preprocess_for_eval(frame, config.image)  # [-1, 1]
      samples["waveform"].append(waveform)
      samples["spectrogram"].append(audio_frontend.log_spectrogram(
          tf.constant(waveform), config.audio).numpy())
      samples["image"].append(np.round((image.numpy()[None] + 1) * 127.5)
                              .clip(0, 255).astype(np.uint8))
    if len(samples["waveform"]) == num_samples:
      break
  if not samples["waveform"]:
    raise ValueError(f"{dataset}:{split} has no video of at least one "
                     "second to calibrate on")
  return samples


# --- writing -------------------------------------------------------------------


def read_manifest(directory: str) -> dict[str, Any] | None:
  path = os.path.join(directory, MANIFEST)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def _write_manifest(directory: str, source: dict[str, Any],
                    config: config_lib.Config,
                    entries: dict[str, dict[str, Any]]) -> str:
  """Adds `entries` to the directory's manifest (one source per directory)."""
  manifest = read_manifest(directory) or {"format_version": 1, "files": {}}
  if manifest.get("source", source) != source:
    raise ValueError(
        f"{directory} holds files converted from {manifest['source']}; write "
        f"the conversions of {source} to another --output")
  manifest.update(source=source, config=config_lib.to_dict(config))
  manifest["files"].update(entries)
  path = os.path.join(directory, MANIFEST)
  with tf.io.gfile.GFile(path, "w") as f:
    f.write(json.dumps(manifest, indent=2, sort_keys=True))
  return path


def _taps_sizes(avc: keras.Model, tower: Tower) -> dict[str, int]:
  vision, audio, _ = model_lib.towers_of(avc)
  model = audio if tower.model == "audio" else vision
  return {k: int(model.output[k].shape[-1]) for k in tower.taps}


def convert(avc: keras.Model, config: config_lib.Config, output_dir: str,
            fmt: str, *, source: dict[str, Any],
            audio_inputs: tuple[str, ...] = ("waveform",),
            quantizations: tuple[str, ...] = ("float32",),
            calibration: dict[str, list[np.ndarray]] | None = None,
            models: tuple[str, ...] = ("audio", "vision"),
            overwrite: bool = False) -> list[str]:
  """Writes `avc`'s towers in one format into `output_dir`.

  Args:
    avc: the float32 `avc_network` with trained weights.
    config: its config.
    output_dir: where the files and `export_manifest.json` go.
    fmt: "litert", "onnx" or "keras" (the SavedModel: `export.export`).
    source: what the weights are, recorded for `check`: {"workdir",
      "checkpoint", "step"}.
    audio_inputs: the audio towers to write (litert, onnx): "waveform"
      and / or "spectrogram".
    quantizations: LiteRT only: any of `QUANTIZATIONS`.
    calibration: `calibration_inputs`, needed for "int8".
    models: litert / onnx: the towers to convert, "audio" and / or "vision".
    overwrite: replace existing files.

  Returns:
    The paths written (without the manifest).

  Raises:
    FileExistsError: a file exists and `overwrite` is False.
    ValueError: an unknown format, input or quantisation.
    MissingExtraError: the format's converter is not installed.
  """
  if fmt not in FORMATS[1:]:
    raise ValueError(f"format={fmt!r}; expected one of {FORMATS[1:]} "
                     "(the SavedModel is written by export.export)")
  for value, allowed, what in ((audio_inputs, AUDIO_INPUTS, "audio_inputs"),
                               (quantizations, QUANTIZATIONS,
                                "quantizations")):
    bad = [v for v in value if v not in allowed]
    if bad or not value:
      raise ValueError(f"{what}={list(value)}; expected some of {allowed}")
  if fmt != "litert" and quantizations != ("float32",):
    raise ValueError(f"quantizations={list(quantizations)}: only LiteRT "
                     "files are quantised")
  if "int8" in quantizations and calibration is None:
    raise ValueError("quantization='int8' needs calibration inputs "
                     "(--calibration_dataset)")
  tf.io.gfile.makedirs(output_dir)
  entries, planned = {}, []
  if fmt == "keras":
    if config.model.fused_batch_norm:
      # Keras' own BN layers (the same variables and arithmetic as the fused
      # one, an l3_tf class): the files reload with no l3_tf import.
      plain = model_lib.avc_network(
          dataclasses.replace(config.model, fused_batch_norm=False),
          config.image, config.audio)
      plain.set_weights(avc.get_weights())
      avc = plain
    vision, audio, _ = model_lib.towers_of(avc)
    for model, keras_model in (("audio", audio), ("vision", vision),
                               ("avc", avc)):
      name = f"{_TOWER_FILES[model]}.keras"
      planned.append((name, keras_model))
      entries[name] = {"format": "keras", "model": model}
  else:
    folded = export_lib.batch_norm_folded(avc, config) if (
        config.model.use_batch_norm) else avc
    # Checked before anything is written.
    require("ai_edge_litert.interpreter" if fmt == "litert" else "tf2onnx")
    wanted = [t for t in towers(config).values() if t.model in models
              and (t.model == "vision" or t.input in audio_inputs)]
    missing = [t.input for t in wanted if "int8" in quantizations
               and t.input not in calibration]
    if not wanted or missing:
      raise ValueError(f"models={list(models)}: nothing to convert, or no "
                       f"calibration inputs for {missing}")
    for tower in wanted:
      for quantization in (quantizations if fmt == "litert"
                           else ("float32",)):
        suffix = (f"_{quantization}.tflite" if fmt == "litert" else ".onnx")
        name = tower.stem + suffix
        planned.append((name, (tower, quantization)))
        entries[name] = {
            "format": fmt, "model": tower.model, "input": tower.input,
            "signature": tower.signature, "quantization": quantization,
            "outputs": _taps_sizes(avc, tower),
            "batch_norm_folded": folded is not avc}
        if fmt == "onnx":
          entries[name]["opset"] = ONNX_OPSET
  for name, _ in planned:
    path = os.path.join(output_dir, name)
    if tf.io.gfile.exists(path) and not overwrite:
      raise FileExistsError(f"{path} exists; pass overwrite=True "
                            "(--overwrite) to replace it")
  written = []
  for name, what in planned:
    path = os.path.join(output_dir, name)
    staging = f"{path}.tmp-{os.getpid()}"
    if fmt == "keras":
      what.save(staging + ".keras")
      os.replace(staging + ".keras", path)
    else:
      tower, quantization = what
      function = tower_function(folded, config, tower)
      if fmt == "litert":
        blob = to_litert(function, tower, quantization,
                         calibration and calibration[tower.input])
        with open(staging, "wb") as f:
          f.write(blob)
      else:
        to_onnx(function, tower, staging)
      os.replace(staging, path)
    entries[name]["bytes"] = os.path.getsize(path)
    written.append(path)
  _write_manifest(output_dir, source, config, entries)
  return written


def convert_workdir(workdir: str, output_dir: str, fmt: str, *,
                    checkpoint: str | None = None, **kwargs) -> list[str]:
  """`convert` of a workdir's latest (or the given) checkpoint."""
  checkpoint = checkpoint or workdir_lib.latest_checkpoint(workdir)
  config, avc, step = workdir_lib.restore_avc_model(workdir, checkpoint)
  source = {"workdir": os.path.abspath(workdir),
            "checkpoint": os.path.abspath(checkpoint), "step": step}
  return convert(avc, config, output_dir, fmt, source=source, **kwargs)
