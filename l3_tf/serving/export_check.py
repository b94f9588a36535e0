"""Checks a converted file (LiteRT, ONNX, .keras) against its source model.

`check(path)` reads the directory's `export_manifest.json` (written by
`l3_tf.serving.export_formats`), runs the file on generated inputs in its
runtime and compares its outputs with the trained network's: float32 files
within the network's float32 round-off bound per example, quantised ones
by the cosine of each output row (`export_formats.MIN_COSINE`).
`python -m experiments.export --check=PATH`.
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
from l3_tf.training import compiled_check
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


def _model_on_path(avc: keras.Model, entry: dict[str, Any]) -> keras.Model:
  """The part of `avc` a file's manifest entry exports: a tower or all."""
  vision, audio, _ = model_lib.towers_of(avc)
  return {"audio": audio, "vision": vision, "avc": avc}[entry["model"]]


def reference_outputs(avc: keras.Model, config: config_lib.Config,
                      entry: dict[str, Any], inputs) -> dict[str, np.ndarray]:
  """What the source Keras model computes on a converted file's path.

  A waveform tower runs the portable front end here, as the converted file
  does: the comparison is of the conversion alone. (The portable front end
  against tf.signal's, the SavedModel's, is bounded element by element in
  the tests: its difference depends on the data where magnitudes near 0.)
  """
  if entry["format"] == "keras":
    outputs = _model_on_path(avc, entry)(inputs, training=False)
    if not isinstance(outputs, dict):
      outputs = {"logits": outputs}
    return {k: np.asarray(v) for k, v in outputs.items()}
  tower = next(t for t in export_formats.towers(config).values()
               if t.model == entry["model"] and t.input == entry["input"])
  run = export_formats.tower_function(avc, config, tower, portable=True)
  return {k: v.numpy() for k, v in
          run(tf.constant(inputs[tower.input])).items()}


def _row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
  return np.sum(a * b, 1) / np.maximum(
      np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)


def compare(expected: dict[str, np.ndarray], got: dict[str, np.ndarray],
            quantization: str = "float32", bound: float | None = None,
            row_scales: dict[str, np.ndarray] | None = None
            ) -> dict[str, Any]:
  """Per output: max abs error, smallest row cosine; and pass / fail.

  float32: every row (one example) within round-off of the reference,
  ||got - expected|| <= bound x ||expected|| (`compiled_check.
  roundoff_ratios`; `bound` is the network's `forward_bound`, derived from
  its depth and widest sum, not from one machine's error). Quantised: the
  smallest row cosine to float32 >= `export_formats.MIN_COSINE`.

  Returns:
    {"outputs": {name: {"max_error", "min_cosine", "scale"[,
     "roundoff_ratio"]}}, "passed": bool, "rule": the rule applied}.

  Raises:
    ValueError: the outputs differ in names or shapes, or a float32
      comparison has no `bound`.
  """
  if sorted(expected) != sorted(got):
    raise ValueError(f"outputs {sorted(got)} but the source model has "
                     f"{sorted(expected)}")
  for name, value in expected.items():
    if np.shape(got[name]) != value.shape:
      raise ValueError(f"output {name!r} has shape {np.shape(got[name])}, "
                       f"the source model {value.shape}")
  if quantization == "float32":
    if bound is None:
      raise ValueError("a float32 comparison needs the round-off bound")
    ratios = compiled_check.roundoff_ratios(expected, got, bound, row_scales)
    rule = (f"per example, |got - reference| <= {bound:.3g} x |reference| "
            "(normwise; the network's float32 round-off bound)")
  else:
    ratios = {}
    rule = (f"min row cosine to float32 >= "
            f"{export_formats.MIN_COSINE[quantization]}")
  outputs, passed = {}, True
  for name, value in expected.items():
    other = np.asarray(got[name])
    outputs[name] = {
        "max_error": float(np.max(np.abs(value - other))),
        "min_cosine": float(np.min(_row_cosines(value, other))),
        "scale": max(1.0, float(np.max(np.abs(value))))}
    if quantization == "float32":
      outputs[name]["roundoff_ratio"] = ratios[name]
      passed &= ratios[name] <= 1.0
    else:
      passed &= (outputs[name]["min_cosine"] >=
                 export_formats.MIN_COSINE[quantization])
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
    expected, logits = export_lib.keras_reference_outputs(
        avc, config, inputs, with_logits=True)
    got = export_lib.signature_outputs(tf.saved_model.load(path).signatures,
                                       inputs)
    result = compare(export_lib.flatten_outputs(expected),
                     export_lib.flatten_outputs(got),
                     bound=compiled_check.forward_bound(avc),
                     row_scales=export_lib.probability_row_scales(logits))
  else:
    inputs = generated_inputs(config, entry)
    expected = reference_outputs(avc, config, entry, inputs)
    got = load_runner(path, entry)(inputs)
    result = compare(expected, got, entry.get("quantization", "float32"),
                     bound=compiled_check.forward_bound(
                         _model_on_path(avc, entry)))
  result.update(path=path, format=entry["format"], checkpoint=checkpoint,
                quantization=entry.get("quantization", "float32"))
  return result


def format_check(result: dict[str, Any]) -> str:
  """The lines `--check` prints: one per output, then PASS or FAIL."""
  lines = [f"{result['path']} ({result['format']}, "
           f"{result['quantization']}) against {result['checkpoint']}:"]
  for name, o in sorted(result["outputs"].items()):
    ratio = ("" if "roundoff_ratio" not in o else
             f", {o['roundoff_ratio']:.3g} x the round-off bound")
    lines.append(f"  {name}: max abs error {o['max_error']:.3g} "
                 f"(max |reference| {o['scale']:.3g}), min cosine "
                 f"{o['min_cosine']:.6f}{ratio}")
  verdict = "PASS" if result["passed"] else "FAIL"
  lines.append(f"{verdict}: {result['rule']}")
  return "\n".join(lines)
