"""CPU bf16 detection and the warning for bf16 without hardware."""

import warnings

import pytest

from l3_tf.platform import cpu_features

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx2 avx512f {extra}

processor\t: 1
model name\t: ignored second core
flags\t\t: fpu
"""


@pytest.mark.parametrize("extra,amx,avx512,units", [
    ("avx512_bf16", False, True, True),
    ("amx_bf16 amx_tile avx512_bf16", True, True, True),
    ("avx512_vnni", False, False, False),
])
def test_parse_cpuinfo(extra, amx, avx512, units):
  features = cpu_features.parse_cpuinfo(CPUINFO.format(extra=extra))
  assert features.model == "AMD EPYC 9R14"
  assert (features.amx_bf16, features.avx512_bf16,
          features.has_bf16_units) == (amx, avx512, units)


def test_unknown_cpu_is_not_guessed(tmp_path):
  features = cpu_features.cpu_features(str(tmp_path / "absent"))
  assert features.has_bf16_units is None
  assert not cpu_features.warn_if_bf16_is_slow("bfloat16", features)


def test_warns_once_and_only_without_bf16_units(monkeypatch):
  monkeypatch.setattr(cpu_features, "_warned", set())
  without = cpu_features.parse_cpuinfo(CPUINFO.format(extra="avx2"))
  with_units = cpu_features.parse_cpuinfo(CPUINFO.format(extra="avx512_bf16"))
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    assert not cpu_features.warn_if_bf16_is_slow("float32", without)
    assert not cpu_features.warn_if_bf16_is_slow("bfloat16", with_units)
    assert cpu_features.warn_if_bf16_is_slow("bfloat16", without)
    assert not cpu_features.warn_if_bf16_is_slow("bfloat16", without)
  assert len(caught) == 1
  assert issubclass(caught[0].category, cpu_features.SlowPrecisionWarning)
  assert "AMD EPYC 9R14" in str(caught[0].message)


def test_this_machine_is_read():
  features = cpu_features.cpu_features()
  if features.flags is None:
    pytest.skip("no /proc/cpuinfo on this system")
  assert isinstance(features.has_bf16_units, bool)
