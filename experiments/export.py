r"""Exports a training workdir's checkpoint, or checks an exported file.

  python -m experiments.export --workdir=runs/demo --output=runs/demo/export
  python -m experiments.export --workdir=runs/demo --output=runs/demo/litert \
      --format=litert [--audio_input=waveform,spectrogram] \
      [--quantize=float32,dynamic_int8,int8 \
       --calibration_dataset=video_folder/mine --calibration_data_dir=DIR]
  python -m experiments.export --workdir=runs/demo --output=DIR --format=onnx
  python -m experiments.export --workdir=runs/demo --output=DIR --format=keras
  python -m experiments.export --check=runs/demo/litert/vision_tower_float32.tflite

--format=saved_model (default): signatures `audio_embedding`,
`image_embedding` and `avc_score` (see `l3_tf/serving/export.py`). litert / onnx /
keras: one file per tower (see `l3_tf/serving/export_formats.py`). Each export is
reloaded and checked against the Keras model before the command succeeds
(--noverify skips that); --check=PATH does the same check later, on any
machine that has the source checkpoint, printing the max error of every
output and a PASS / FAIL line (exit status 1 on FAIL).

LiteRT and ONNX need the `export` extra: pip install 'l3_tf[export]'.
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import sys

from absl import app
from absl import flags

from experiments import cli

from l3_tf.serving import export as export_lib
from l3_tf.serving import export_check
from l3_tf.serving import export_formats
from l3_tf.training import workdir as workdir_lib

_WORKDIR = flags.DEFINE_string("workdir", None, "training workdir")
_OUTPUT = flags.DEFINE_string(
    "output", None, "SavedModel directory (saved_model) or the directory "
    "of the converted files (litert, onnx, keras)")
_FORMAT = flags.DEFINE_enum("format", "saved_model",
                            list(export_formats.FORMATS), "what to write")
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "checkpoint prefix (default: the latest; with "
    "--check: compare with this one instead of the recorded source)")
_COMPUTE_DTYPE = flags.DEFINE_enum(
    "compute_dtype", "float32", list(export_lib.COMPUTE_DTYPES),
    "saved_model: dtype the convolutions run in (bfloat16: faster on "
    "AMX/bf16 hardware)")
_AUDIO_INPUT = flags.DEFINE_list(
    "audio_input", ["waveform"], "litert / onnx: the audio towers' inputs, "
    f"any of {', '.join(export_formats.AUDIO_INPUTS)}")
_QUANTIZE = flags.DEFINE_list(
    "quantize", ["float32"], "litert: any of "
    f"{', '.join(export_formats.QUANTIZATIONS)} (int8 needs "
    "--calibration_dataset)")
_CALIBRATION_DATASET = flags.DEFINE_string(
    "calibration_dataset", None, "a built TFDS video dataset whose windows "
    "and frames calibrate int8 (e.g. video_folder/NAME)")
_CALIBRATION_DATA_DIR = flags.DEFINE_string(
    "calibration_data_dir", None, "its TFDS data dir")
_CALIBRATION_SPLIT = flags.DEFINE_string("calibration_split", "train",
                                         "its split")
_CALIBRATION_SAMPLES = flags.DEFINE_integer(
    "calibration_samples", 64, "1-second windows (and frames) to calibrate on")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "replace --output")
_VERIFY = flags.DEFINE_bool("verify", True,
                            "reload the export and compare with Keras")
_CHECK = flags.DEFINE_string(
    "check", None, "check this exported file or SavedModel against its "
    "source checkpoint instead of exporting")


def _check(path: str, checkpoint: str | None) -> bool:
  result = export_check.check(path, checkpoint)
  print(export_check.format_check(result))
  return result["passed"]


def _export() -> list[str]:
  if _FORMAT.value == "saved_model":
    return [export_lib.export_workdir(
        _WORKDIR.value, _OUTPUT.value, checkpoint=_CHECKPOINT.value,
        compute_dtype=_COMPUTE_DTYPE.value, overwrite=_OVERWRITE.value,
        verify=_VERIFY.value)]
  quantizations = tuple(_QUANTIZE.value)
  calibration = None
  if "int8" in quantizations:
    if not _CALIBRATION_DATASET.value:
      raise ValueError("--quantize=int8 needs --calibration_dataset (a built "
                       "video dataset to calibrate the activations on)")
    config = workdir_lib.read_config(_WORKDIR.value)
    calibration = export_formats.calibration_inputs(
        _CALIBRATION_DATASET.value, _CALIBRATION_DATA_DIR.value,
        _CALIBRATION_SPLIT.value, config, _CALIBRATION_SAMPLES.value)
  paths = export_formats.convert_workdir(
      _WORKDIR.value, _OUTPUT.value, _FORMAT.value,
      checkpoint=_CHECKPOINT.value,
      audio_inputs=tuple(dict.fromkeys(_AUDIO_INPUT.value)),
      quantizations=quantizations, calibration=calibration,
      overwrite=_OVERWRITE.value)
  if _VERIFY.value:
    failed = [p for p in paths if not _check(p, None)]
    if failed:
      raise ValueError(f"the check failed for {failed}")
  return paths


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  try:
    if _CHECK.value:
      sys.exit(0 if _check(_CHECK.value, _CHECKPOINT.value) else 1)
    if not _WORKDIR.value or not _OUTPUT.value:
      raise app.UsageError("--workdir and --output are required to export "
                           "(or pass --check=PATH)")
    paths = _export()
  except (FileExistsError, FileNotFoundError, ValueError,
          export_formats.MissingExtraError) as e:
    sys.exit(f"export failed: {e}")
  for path in paths:
    print(f"exported {path}")


if __name__ == "__main__":
  cli.run(main)
