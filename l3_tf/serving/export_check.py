"""Checks a converted file (LiteRT, ONNX, .keras) against its source model.

`check(path)` reads the directory's `export_manifest.json` (written by
`l3_tf.serving.export_formats`), runs the file on generated inputs in its
runtime and compares its outputs with the trained network's: float32 files
within `export_formats.FLOAT_TOLERANCE`, quantised ones by the cosine of
each output row (`export_formats.MIN_COSINE`). `python -m experiments.export
--check=PATH`.
"""

import os
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from l3_tf.data import audio_frontend
from l3_tf.model import networks as model_lib
from l3_tf.serving import export as export_lib
from l3_tf.serving import export_formats
from l3_tf.training import config as config_lib


def load_runner(path: str, entry: dict[str, Any]) -> Callable:
  """A function {input name: array} -> {output name: array} for one file."""
  if entry["format"] == "litert":
    litert = export_formats.require("ai_edge_litert.interpreter")
    interpreter = litert.Interpreter(model_path=path)
    runner = interpreter.get_signature_runner(entry["signature"])
    return lambda inputs: runner(**inputs)
  if entry["format"] == "onnx":
    ort = export_formats.require("onnxruntime")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return lambda inputs: dict(zip(names, session.run(None, inputs)))
  if entry["format"] == "keras":
    model = keras.saving.load_model(path)

    def run(inputs):
      outputs = model(inputs, training=False)
      if not isinstance(outputs, dict):
        outputs = {"logits": outputs}
      return {k: np.asarray(v) for k, v in outputs.items()}

    return run
  raise ValueError(f"{path}: format={entry['format']!r} is not one of "
                   f"{export_formats.FORMATS[1:]}")


def generated_inputs(config: config_lib.Config, entry: dict[str, Any],
                     batch: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
  """Inputs of one file's model: noisy tones, their spectrograms, images."""
  reference = export_lib.reference_inputs(config, batch, seed)
  waveform = reference["waveform"]  # [b, 48000]
  spectrogram = audio_frontend.log_spectrogram(
      tf.constant(waveform), config.audio).numpy()  # [b, 257, 199, 1]
  crop = config.image.crop_size
  image = np.random.default_rng(seed).integers(
      0, 256, (batch, crop, crop, 3), dtype=np.uint8)
  if entry["format"] == "keras":
    symmetric = image.astype(np.float32) / 127.5 - 1.0
    return {"audio": spectrogram, "vision": symmetric,
            "avc": {"image": symmetric, "spectrogram": spectrogram}
            }[entry["model"]]
  return {entry["input"]: {"waveform": waveform, "spectrogram": spectrogram,
                           "image": image}[entry["input"]]}


def reference_outputs(avc: keras.Model, config: config_lib.Config,
                      entry: dict[str, Any], inputs) -> dict[str, np.ndarray]:
  """What the source Keras model (as in the SavedModel) computes."""
  if entry["format"] == "keras":
    vision, audio, _ = model_lib.towers_of(avc)
    model = {"audio": audio, "vision": vision, "avc": avc}[entry["model"]]
    outputs = model(inputs, training=False)
    if not isinstance(outputs, dict):
      outputs = {"logits": outputs}
    return {k: np.asarray(v) for k, v in outputs.items()}
  tower = next(t for t in export_formats.towers(config).values()
               if t.model == entry["model"] and t.input == entry["input"])
  run = export_formats.tower_function(avc, config, tower, portable=False)
  return {k: v.numpy() for k, v in
          run(tf.constant(inputs[tower.input])).items()}


def _row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
  return np.sum(a * b, 1) / np.maximum(
      np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)


def compare(expected: dict[str, np.ndarray], got: dict[str, np.ndarray],
            quantization: str = "float32") -> dict[str, Any]:
  """Per output: max abs error, smallest row cosine; and pass / fail.

  Returns:
    {"outputs": {name: {"max_error", "min_cosine", "scale"}}, "passed": bool,
     "rule": the rule applied}.

  Raises:
    ValueError: the outputs differ in names or shapes.
  """
  if sorted(expected) != sorted(got):
    raise ValueError(f"outputs {sorted(got)} but the source model has "
                     f"{sorted(expected)}")
  outputs, passed = {}, True
  for name, value in expected.items():
    other = np.asarray(got[name])
    if other.shape != value.shape:
      raise ValueError(f"output {name!r} has shape {other.shape}, the source "
                       f"model {value.shape}")
    scale = max(1.0, float(np.max(np.abs(value))))
    error = float(np.max(np.abs(value - other)))
    cosine = float(np.min(_row_cosines(value, other)))
    outputs[name] = {"max_error": error, "min_cosine": cosine, "scale": scale}
    if quantization == "float32":
      passed &= error <= export_formats.FLOAT_TOLERANCE * scale
    else:
      passed &= cosine >= export_formats.MIN_COSINE[quantization]
  rule = (f"max abs error <= {export_formats.FLOAT_TOLERANCE:g} x max(1, max |reference|)"
          if quantization == "float32" else
          f"min row cosine to float32 >= {export_formats.MIN_COSINE[quantization]}")
  return {"outputs": outputs, "passed": bool(passed), "rule": rule}


def _restore(config: config_lib.Config, checkpoint: str) -> keras.Model:
  """The float32 `avc_network` of `config` with a checkpoint's weights."""
  avc = model_lib.avc_network(config.model, config.image, config.audio)
  status = tf.train.Checkpoint(model=avc).restore(checkpoint)
  status.expect_partial()
  status.assert_existing_objects_matched()
  return avc


def check(path: str, checkpoint: str | None = None) -> dict[str, Any]:
  """Loads an exported file (any format) and compares it with its source.

  Args:
    path: a SavedModel directory or a file written by `convert` (its
      directory's `export_manifest.json` names the source checkpoint).
    checkpoint: compare with this checkpoint instead of the recorded one
      (e.g. the workdir moved).

  Returns:
    `compare`'s result plus "path", "format", "quantization", "checkpoint".

  Raises:
    FileNotFoundError: `path` or its manifest entry or checkpoint is missing.
    MissingExtraError: the format's runtime is not installed.
  """
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"--check={path!r} does not exist")
  if export_lib.is_saved_model(path):
    assets = export_lib.read_assets(path)
    config = assets["config"]
    checkpoint = checkpoint or assets["export"]["checkpoint"]
    entry = {"format": "saved_model", "quantization": "float32"}
  else:
    directory, name = os.path.split(os.path.abspath(path))
    manifest = export_formats.read_manifest(directory)
    if manifest is None or name not in manifest["files"]:
      raise FileNotFoundError(
          f"{path} is not listed in {os.path.join(directory, export_formats.MANIFEST)}: "
          "check works on files written by `python -m experiments.export`")
    entry = manifest["files"][name]
    config = config_lib.from_dict(config_lib.Config, manifest["config"])
    checkpoint = checkpoint or manifest["source"]["checkpoint"]
  if not checkpoint or not tf.io.gfile.exists(checkpoint + ".index"):
    raise FileNotFoundError(
        f"the source checkpoint {checkpoint!r} of {path} is not there; pass "
        "--checkpoint=PREFIX")
  avc = _restore(config, checkpoint)
  if entry["format"] == "saved_model":
    inputs = export_lib.reference_inputs(config)
    expected = export_lib.keras_reference_outputs(avc, config, inputs)
    got = export_lib.signature_outputs(tf.saved_model.load(path).signatures,
                                       inputs)
    flatten = lambda d: {f"{s}/{k}": v for s, o in d.items()
                         for k, v in o.items()}
    result = compare(flatten(expected), flatten(got))
  else:
    inputs = generated_inputs(config, entry)
    expected = reference_outputs(avc, config, entry, inputs)
    got = load_runner(path, entry)(inputs)
    result = compare(expected, got, entry.get("quantization", "float32"))
  result.update(path=path, format=entry["format"], checkpoint=checkpoint,
                quantization=entry.get("quantization", "float32"))
  return result


def format_check(result: dict[str, Any]) -> str:
  """The lines `--check` prints: one per output, then PASS or FAIL."""
  lines = [f"{result['path']} ({result['format']}, "
           f"{result['quantization']}) against {result['checkpoint']}:"]
  for name, o in sorted(result["outputs"].items()):
    lines.append(f"  {name}: max abs error {o['max_error']:.3g} "
                 f"(max |reference| {o['scale']:.3g}), min cosine "
                 f"{o['min_cosine']:.6f}")
  verdict = "PASS" if result["passed"] else "FAIL"
  lines.append(f"{verdict}: {result['rule']}")
  return "\n".join(lines)
