r"""Exports a training workdir's latest checkpoint as a SavedModel.

  python -m experiments.export --workdir=runs/demo --output=runs/demo/export

Signatures `audio_embedding`, `image_embedding` and `avc_score` (see
`l3_tf/export.py`); the export is reloaded and checked against the Keras
model before the command succeeds.
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import sys

from absl import app
from absl import flags

from l3_tf import export as export_lib

_WORKDIR = flags.DEFINE_string("workdir", None, "training workdir",
                               required=True)
_OUTPUT = flags.DEFINE_string("output", None, "SavedModel directory to write",
                              required=True)
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "checkpoint prefix (default: the latest)")
_COMPUTE_DTYPE = flags.DEFINE_enum(
    "compute_dtype", "float32", list(export_lib.COMPUTE_DTYPES),
    "dtype the convolutions run in (bfloat16: faster on AMX/bf16 hardware)")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "replace --output")
_VERIFY = flags.DEFINE_bool("verify", True,
                            "reload the export and compare with Keras")


def main(argv):
  del argv
  try:
    path = export_lib.export_workdir(
        _WORKDIR.value, _OUTPUT.value, checkpoint=_CHECKPOINT.value,
        compute_dtype=_COMPUTE_DTYPE.value, overwrite=_OVERWRITE.value,
        verify=_VERIFY.value)
  except (FileExistsError, FileNotFoundError, ValueError) as e:
    sys.exit(f"export failed: {e}")
  print(f"exported {path}")


if __name__ == "__main__":
  app.run(main)
