r"""Audio tower in each export format: file size, max error, ms per window.

  PYTHONPATH=. python benchmarks/export_formats.py [--widths=1,0.125] [--repeats=5] \
      [--workdir=runs/demo/avc]

For each width: the audio tower (waveform in) as the SavedModel's
`audio_embedding`, LiteRT float32 / dynamic_int8 / int8 and ONNX; max abs
error of `embedding_6144` against the SavedModel (for quantised files also
the smallest row cosine), and milliseconds per 1-second window at batch 1
(one window, as an app embeds a stream), the formats interleaved over
--repeats rounds so that machine load hits all of them alike; the median is
printed. Random weights unless --workdir (then its width only). int8 is
calibrated on generated tones (export_lib.reference_inputs), not real data.
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import dataclasses
import os
import statistics
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from experiments import configs
from l3_tf.evaluation import records
from l3_tf.serving import export as export_lib
from l3_tf.serving import export_check
from l3_tf.serving import export_formats
from l3_tf.training import workdir as workdir_lib

_WIDTHS = flags.DEFINE_list("widths", ["1", "0.125"], "width multipliers")
_REPEATS = flags.DEFINE_integer("repeats", 5, "interleaved timing rounds")
_CALLS = flags.DEFINE_integer("calls", 5, "calls per format per round")
_WORKDIR = flags.DEFINE_string("workdir", None, "trained weights instead")


def _models(width: float | None):
  if _WORKDIR.value:
    config, avc, _ = workdir_lib.restore_avc_model(_WORKDIR.value)
    return config, avc, f"{_WORKDIR.value}"
  base = configs.get_config("demo")
  config = dataclasses.replace(base, model=dataclasses.replace(
      base.model, width_multiplier=width))
  config, avc, description = workdir_lib.load_network("random", config)
  return config, avc, description


def _bench(width, root):
  config, avc, description = _models(width)
  source = {"workdir": description, "checkpoint": None, "step": None}
  out = os.path.join(root, f"w{width}")
  calibration = {"waveform": [
      x[None] for x in export_lib.reference_inputs(config, 16, seed=7)
      ["waveform"]]}
  started = time.perf_counter()
  export_formats.convert(avc, config, out, "litert", source=source,
                         quantizations=export_formats.QUANTIZATIONS,
                         calibration=calibration, models=("audio",))
  litert_seconds = time.perf_counter() - started
  export_formats.convert(avc, config, out, "onnx", source=source,
                         models=("audio",))
  saved_model = os.path.join(out, "saved_model")
  export_lib.export(avc, config, saved_model)
  loaded = tf.saved_model.load(saved_model)
  signature = loaded.signatures["audio_embedding"]
  inputs = export_lib.reference_inputs(config, 4, seed=3)["waveform"]
  reference = signature(waveform=tf.constant(inputs))["embedding_6144"].numpy()
  one = inputs[:1]
  runners = {"saved_model": lambda x: {"embedding_6144": signature(
      waveform=tf.constant(x))["embedding_6144"].numpy()}}
  sizes = {"saved_model": sum(
      os.path.getsize(os.path.join(d, f))
      for d, _, files in os.walk(saved_model) for f in files)}
  for q in export_formats.QUANTIZATIONS:
    name = f"audio_tower_waveform_{q}.tflite"
    entry = {"format": "litert", "signature": "audio_embedding"}
    run = export_check.load_runner(os.path.join(out, name), entry)
    runners[f"litert_{q}"] = lambda x, run=run: run({"waveform": x})
    sizes[f"litert_{q}"] = os.path.getsize(os.path.join(out, name))
  onnx_run = export_check.load_runner(
      os.path.join(out, "audio_tower_waveform.onnx"), {"format": "onnx"})
  runners["onnx"] = lambda x: onnx_run({"waveform": x})
  sizes["onnx"] = os.path.getsize(os.path.join(out, "audio_tower_waveform.onnx"))
  errors, cosines = {}, {}
  for name, run in runners.items():
    got = run(inputs)["embedding_6144"]
    errors[name] = float(np.max(np.abs(got - reference)))
    cosines[name] = float(np.min(export_check._row_cosines(reference, got)))  # pylint: disable=protected-access
    run(one)  # warm up batch 1
  times = {name: [] for name in runners}
  for _ in range(_REPEATS.value):
    for name, run in runners.items():
      started = time.perf_counter()
      for _ in range(_CALLS.value):
        run(one)
      times[name].append((time.perf_counter() - started) / _CALLS.value * 1e3)
  print(f"\n{description}: widths {config.model.widths}, "
        f"reference max |embedding_6144| {np.abs(reference).max():.3g}; "
        f"LiteRT conversion {litert_seconds:.1f} s for 3 files")
  print("| format | size | max abs error | min cosine | ms / 1-s window "
        "(median, batch 1) | vs SavedModel |")
  print("|---|---|---|---|---|---|")
  base = statistics.median(times["saved_model"])
  for name in runners:
    median = statistics.median(times[name])
    print(f"| {name} | {sizes[name] / 1e6:.2f} MB | {errors[name]:.2g} | "
          f"{cosines[name]:.6f} | {median:.1f} | {base / median:.2f}x |")


def main(argv):
  del argv
  env = records.environment()
  print(f"{env['hardware']}, load before: {os.getloadavg()}")
  with tempfile.TemporaryDirectory() as root:
    for width in ([None] if _WORKDIR.value
                  else [float(w) for w in _WIDTHS.value]):
      _bench(width, root)
  print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
  app.run(main)
