"""What this CPU can do for bfloat16, read from the CPU's flags.

bfloat16 only pays on a CPU with bf16 units: AMX (`amx_bf16`, Sapphire
Rapids and later) or AVX512-BF16 (`avx512_bf16`: Cooper Lake, AMD Zen 4 and
later). Elsewhere oneDNN emulates bf16 through float32 conversions and a
bfloat16 step is slower than float32. `warn_if_bf16_is_slow` is the check
the precision policy calls when training starts.

Linux only (`/proc/cpuinfo`); on other systems the features are unknown and
nothing warns.

Which kernels TensorFlow runs on a CPU is the other half: `prefer_onednn`
(called when `l3_tf` is imported) asks for oneDNN's kernels where
TensorFlow would otherwise use Eigen's, and `numeric_path` says which
path and instruction set a process runs under (benchmarks and the demo
print it beside their figures).
"""

import dataclasses
import functools
import os
import platform
import sys
import warnings

CPUINFO = "/proc/cpuinfo"
BF16_PRECISIONS = ("bfloat16", "mixed_bfloat16")


class SlowPrecisionWarning(UserWarning):
  """The requested precision has no hardware support on this machine."""


@dataclasses.dataclass(frozen=True)
class CpuFeatures:
  """The bf16-relevant facts of this CPU (None: could not be read)."""

  model: str | None
  flags: frozenset[str] | None

  @property
  def amx_bf16(self) -> bool | None:
    return None if self.flags is None else "amx_bf16" in self.flags

  @property
  def avx512_bf16(self) -> bool | None:
    return None if self.flags is None else "avx512_bf16" in self.flags

  @property
  def has_bf16_units(self) -> bool | None:
    """True with AMX-BF16 or AVX512-BF16, False without, None unknown."""
    if self.flags is None:
      return None
    return bool(self.amx_bf16 or self.avx512_bf16)

  def as_dict(self) -> dict:
    return {"cpu_model": self.model, "amx_bf16": self.amx_bf16,
            "avx512_bf16": self.avx512_bf16,
            "bf16_units": self.has_bf16_units}


def parse_cpuinfo(text: str) -> CpuFeatures:
  """Features of the first processor listed in a `/proc/cpuinfo` text."""
  model, flags = None, None
  for line in text.splitlines():
    key, _, value = line.partition(":")
    key = key.strip()
    if key == "model name" and model is None:
      model = value.strip()
    elif key == "flags" and flags is None:
      flags = frozenset(value.split())
  return CpuFeatures(model, flags)


@functools.cache
def cpu_features(path: str = CPUINFO) -> CpuFeatures:
  """This machine's `CpuFeatures` (read once)."""
  try:
    with open(path, encoding="utf-8", errors="replace") as f:
      return parse_cpuinfo(f.read())
  except OSError:
    return CpuFeatures(None, None)


_warned: set[str] = set()


def warn_if_bf16_is_slow(precision: str,
                         features: CpuFeatures | None = None) -> bool:
  """Warns once per process if `precision` is bf16 and the CPU has no bf16
  units.

  Args:
    precision: a `train.precision` value ("float32", "bfloat16",
      "float16") or a Keras policy name ("mixed_bfloat16").
    features: default this machine's (`cpu_features()`).

  Returns:
    True if it warned now (False: not bf16, bf16 units present, unknown
    CPU, or already warned).
  """
  if precision not in BF16_PRECISIONS:
    return False
  features = features or cpu_features()
  if features.has_bf16_units is not False or precision in _warned:
    return False
  _warned.add(precision)
  warnings.warn(
      f"precision={precision!r} on a CPU without bfloat16 units "
      f"({features.model or 'unknown model'}: neither amx_bf16 nor "
      "avx512_bf16 among its flags): bfloat16 is emulated and will be "
      "slower than float32 on this machine", SlowPrecisionWarning,
      stacklevel=2)
  return True


# TensorFlow's switch between its oneDNN and its Eigen CPU kernels, read once
# when TensorFlow loads; oneDNN's instruction-set cap (e.g. "AVX2").
ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
ONEDNN_ISA_ENV = "ONEDNN_MAX_CPU_ISA"

# oneDNN's x86 instruction sets, lowest first, each with the CPU flags it
# needs (the names are ONEDNN_MAX_CPU_ISA's values, lower case).
ONEDNN_ISAS = (
    ("sse41", {"sse4_1"}),
    ("avx", {"avx"}),
    ("avx2", {"avx2", "fma"}),
    ("avx2_vnni", {"avx2", "fma", "avx_vnni"}),
    ("avx512_core", {"avx512f", "avx512bw", "avx512vl", "avx512dq"}),
    ("avx512_core_vnni", {"avx512f", "avx512bw", "avx512vl", "avx512dq",
                          "avx512_vnni"}),
    ("avx512_core_bf16", {"avx512f", "avx512bw", "avx512vl", "avx512dq",
                          "avx512_vnni", "avx512_bf16"}),
    ("avx512_core_amx", {"avx512f", "avx512bw", "avx512vl", "avx512dq",
                         "avx512_vnni", "avx512_bf16", "amx_tile",
                         "amx_bf16"}),
)


def prefer_onednn(environ=None, machine: str | None = None,
                  modules=None) -> bool:
  """Asks TensorFlow for its oneDNN CPU kernels: `TF_ENABLE_ONEDNN_OPTS=1`.

  TensorFlow turns oneDNN on by itself only on CPUs with AVX512-VNNI,
  AVX512-BF16 or AMX; elsewhere (AVX2-only x86, e.g. AMD Zen 2) it runs
  Eigen's kernels. The L3 training step, measured at the demo width (1/8,
  batch 32, float32) on an AMD EPYC (family 23, AVX2) with TF 2.16.2, one
  run, same load: Eigen 0.70x a channels-last PyTorch step, oneDNN 2.65x
  (README, "Speed"). Where TensorFlow already chose oneDNN this changes
  nothing.

  Sets the variable only when the user has not (their value wins:
  `TF_ENABLE_ONEDNN_OPTS=0` selects Eigen), on x86-64 (oneDNN's other
  builds have other kernels, not measured here), and before TensorFlow is
  imported (it reads the variable once, when it loads).

  Returns:
    True if it set the variable.
  """
  environ = os.environ if environ is None else environ
  machine = platform.machine() if machine is None else machine
  modules = sys.modules if modules is None else modules
  if ONEDNN_ENV in environ or "tensorflow" in modules:
    return False
  if machine.lower() not in ("x86_64", "amd64"):
    return False
  environ[ONEDNN_ENV] = "1"
  return True


def onednn_isa(features: CpuFeatures | None = None,
               environ=None) -> str | None:
  """oneDNN's instruction set here: the CPU's best, capped by
  `ONEDNN_MAX_CPU_ISA` (None: flags unknown)."""
  features = features or cpu_features()
  environ = os.environ if environ is None else environ
  if features.flags is None:
    return None
  best = None
  for name, needed in ONEDNN_ISAS:
    if needed <= features.flags:
      best = name
  cap = environ.get(ONEDNN_ISA_ENV, "").strip().lower()
  names = [name for name, _ in ONEDNN_ISAS]
  if best is not None and cap in names and names.index(cap) < names.index(best):
    best = cap
  return best


def bf16_blocked_by_isa_cap(features: CpuFeatures | None = None,
                            environ=None) -> str | None:
  """Why bfloat16 ops would abort on this CPU's oneDNN kernels (None: they
  run).

  TensorFlow sends bfloat16 ops to oneDNN on any CPU with AVX-512F (it reads
  the CPU's flags, not oneDNN's cap), and oneDNN's bfloat16 primitives need
  at least avx512_core. With `ONEDNN_MAX_CPU_ISA` capped below that (AVX2,
  to reproduce an AVX2-only CPU's float32 kernels) every bfloat16
  convolution and batch norm aborts ("could not create a primitive
  descriptor"). A CPU that is AVX2-only does not have the problem:
  TensorFlow runs its bfloat16 ops on Eigen there. Nor does Eigen
  (`TF_ENABLE_ONEDNN_OPTS=0`).
  """
  features = features or cpu_features()
  environ = os.environ if environ is None else environ
  if environ.get(ONEDNN_ENV, "1").strip().lower() in ("0", "false", "off"):
    return None
  if features.flags is None or "avx512f" not in features.flags:
    return None
  names = [name for name, _ in ONEDNN_ISAS]
  isa = onednn_isa(features, environ)  # the CPU's best under the cap
  if isa is None or names.index(isa) >= names.index("avx512_core"):
    return None
  return (f"{ONEDNN_ISA_ENV}={environ.get(ONEDNN_ISA_ENV) or '(unset)'} "
          f"(oneDNN's kernels: {isa}) on a CPU with AVX-512F: TensorFlow "
          "sends bfloat16 ops to oneDNN, whose bfloat16 kernels need "
          "avx512_core or above, so they abort; unset "
          f"{ONEDNN_ISA_ENV} (or set it to avx512_core or above), run "
          f"TensorFlow's Eigen kernels ({ONEDNN_ENV}=0), or use float32")


def numeric_path(features: CpuFeatures | None = None) -> dict:
  """Which CPU kernels this process's TensorFlow runs, and on which ISA.

  Returns:
    {"cpu_model", "tensorflow", "onednn" (TensorFlow's own answer; None
    if it could not be asked), "isa" (`onednn_isa`, meaningful when
    "onednn" is true; Eigen picks its own vector code), "env" (the two
    variables that choose the path, as set)}.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  features = features or cpu_features()
  try:
    from tensorflow.python.util import _pywrap_util_port  # pylint: disable=import-outside-toplevel
    onednn = bool(_pywrap_util_port.IsMklEnabled())
  except (ImportError, AttributeError):
    onednn = None
  return {"cpu_model": features.model, "tensorflow": tf.__version__,
          "onednn": onednn, "isa": onednn_isa(features),
          "env": {key: os.environ.get(key)
                  for key in (ONEDNN_ENV, ONEDNN_ISA_ENV)}}
