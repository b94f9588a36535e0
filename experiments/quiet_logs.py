"""Quiet TensorFlow start-up in the binaries: import this module first.

On a CPU-only machine TensorFlow's C++ side prints, before anything else,
eight or so lines about CUDA, cuDNN, cuFFT, cuBLAS and TensorRT factories
and drivers it did not find, plus oneDNN and CPU-instruction notices. None
of them is actionable. Importing this module before anything imports
TensorFlow

- sets `TF_CPP_MIN_LOG_LEVEL=3` (C++ errors and below hidden; Python
  errors and absl/Python logging are unaffected), and
- imports TensorFlow with file descriptor 2 captured, then writes back every
  captured line that is not one of the known start-up notices (TF 2.20+
  logs them through absl before the level applies).

It does nothing when the user set `TF_CPP_MIN_LOG_LEVEL` (their value wins)
or passed `--verbose` (a flag this module defines for every binary that
imports it): then TensorFlow prints what it always printed.
"""

import os
import re
import sys
import tempfile

from absl import flags

# Before TensorFlow loads: l3_tf asks for oneDNN's CPU kernels
# (`l3_tf.platform.cpu_features.prefer_onednn`).
import l3_tf  # noqa: F401  pylint: disable=unused-import

ENV = "TF_CPP_MIN_LOG_LEVEL"
QUIET_LEVEL = "3"

# What TensorFlow prints at start-up on a CPU-only machine (TF 2.16-2.21).
START_UP_NOISE = re.compile(
    r"Unable to register cu(DNN|FFT|BLAS) factory"
    r"|Could not find cuda drivers"
    r"|failed call to cuInit"
    r"|TF-TRT Warning"
    r"|Could not find TensorRT"
    r"|oneDNN custom operations are on"
    r"|cpu_feature_guard"
    r"|To enable the following instructions"
    r"|All log messages before absl::InitializeLog\(\) is called")

VERBOSE = flags.DEFINE_bool(
    "verbose", False, "show TensorFlow's C++ start-up log (CUDA/TensorRT "
    f"probing; hidden by default unless {ENV} is set)")


def verbose_requested(argv: list[str]) -> bool:
  """Whether `argv` asks for --verbose (read before absl parses flags)."""
  verbose = False
  for arg in argv[1:]:
    if arg == "--":
      break
    if arg in ("--verbose", "--verbose=true", "--verbose=1"):
      verbose = True
    elif arg in ("--noverbose", "--verbose=false", "--verbose=0"):
      verbose = False
  return verbose


def filter_start_up_noise(text: str) -> str:
  """`text` without the lines of known TensorFlow start-up notices."""
  return "".join(line for line in text.splitlines(keepends=True)
                 if not START_UP_NOISE.search(line))


def _import_tensorflow_filtered() -> None:
  """Imports TensorFlow with fd 2 captured; re-emits the non-noise lines."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile(mode="w+b") as captured:
    os.dup2(captured.fileno(), 2)
    try:
      import tensorflow  # pylint: disable=unused-import,import-outside-toplevel
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      kept = filter_start_up_noise(
          captured.read().decode("utf-8", errors="replace"))
      if kept:
        sys.stderr.write(kept)
        sys.stderr.flush()


def quiet_tensorflow_start_up(argv: list[str] | None = None,
                              environ=None) -> bool:
  """Silences TensorFlow's start-up log unless the user asked for it.

  Must run before TensorFlow is imported (it has no effect afterwards).

  Returns:
    True if it set the level (False: user's variable, --verbose, or
    TensorFlow already imported).
  """
  argv = sys.argv if argv is None else argv
  environ = os.environ if environ is None else environ
  if ENV in environ or verbose_requested(argv):
    return False
  if "tensorflow" in sys.modules:
    return False
  environ[ENV] = QUIET_LEVEL
  if environ is os.environ:
    _import_tensorflow_filtered()
  return True


quiet_tensorflow_start_up()
