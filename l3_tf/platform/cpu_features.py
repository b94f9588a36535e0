"""What this CPU can do for bfloat16, read from the CPU's flags.

bfloat16 only pays on a CPU with bf16 units: AMX (`amx_bf16`, Sapphire
Rapids and later) or AVX512-BF16 (`avx512_bf16`: Cooper Lake, AMD Zen 4 and
later). Elsewhere oneDNN emulates bf16 through float32 conversions and a
bfloat16 step is slower than float32. `warn_if_bf16_is_slow` is the check
the precision policy calls when training starts.

Linux only (`/proc/cpuinfo`); on other systems the features are unknown and
nothing warns.
"""

import dataclasses
import functools
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
