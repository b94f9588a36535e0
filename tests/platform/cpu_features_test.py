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


def test_prefer_onednn_only_where_nobody_chose():
  environ = {}
  assert cpu_features.prefer_onednn(environ, "x86_64", modules={})
  assert environ == {"TF_ENABLE_ONEDNN_OPTS": "1"}
  users = {"TF_ENABLE_ONEDNN_OPTS": "0"}  # the user's choice wins
  assert not cpu_features.prefer_onednn(users, "x86_64", modules={})
  assert users == {"TF_ENABLE_ONEDNN_OPTS": "0"}
  late = {}  # TensorFlow already read the variable
  assert not cpu_features.prefer_onednn(late, "x86_64",
                                        modules={"tensorflow": object()})
  other = {}
  assert not cpu_features.prefer_onednn(other, "aarch64", modules={})
  assert late == other == {}


def test_this_process_asked_for_onednn_before_tensorflow_loaded():
  """The root conftest imports l3_tf first, as the binaries do."""
  import os
  import platform
  if platform.machine().lower() not in ("x86_64", "amd64"):
    pytest.skip(f"not x86-64 ({platform.machine()}): nothing is asked")
  assert os.environ.get("TF_ENABLE_ONEDNN_OPTS") is not None
  path = cpu_features.numeric_path()
  assert path["onednn"] == (os.environ["TF_ENABLE_ONEDNN_OPTS"] not in
                            ("0", "false", "False"))


@pytest.mark.parametrize("extra,cap,isa", [
    ("avx2 fma", None, "avx2"),
    ("avx2 fma avx512bw avx512vl avx512dq", None, "avx512_core"),
    ("avx2 fma avx512bw avx512vl avx512dq avx512_vnni avx512_bf16", None,
     "avx512_core_bf16"),
    ("avx2 fma avx512bw avx512vl avx512dq avx512_vnni avx512_bf16", "AVX2",
     "avx2"),
    ("avx2 fma", "AVX512_CORE", "avx2"),  # a cap above the CPU changes nothing
])
def test_onednn_isa_is_the_cpu_best_under_the_cap(extra, cap, isa):
  features = cpu_features.parse_cpuinfo(
      CPUINFO.format(extra="sse4_1 avx " + extra))
  environ = {} if cap is None else {"ONEDNN_MAX_CPU_ISA": cap}
  assert cpu_features.onednn_isa(features, environ) == isa


@pytest.mark.parametrize("extra,environ,blocked", [
    # An AVX-512 CPU with oneDNN capped at AVX2: bfloat16 ops abort.
    ("avx2 fma avx512f avx512bw avx512vl avx512dq avx512_bf16",
     {"ONEDNN_MAX_CPU_ISA": "AVX2"}, True),
    ("avx2 fma avx512f avx512bw avx512vl avx512dq",
     {"ONEDNN_MAX_CPU_ISA": "avx2_vnni"}, True),
    # Capped at avx512_core or above, not capped, or Eigen: they run.
    ("avx2 fma avx512f avx512bw avx512vl avx512dq avx512_bf16",
     {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}, False),
    ("avx2 fma avx512f avx512bw avx512vl avx512dq avx512_bf16", {}, False),
    ("avx2 fma avx512f avx512bw avx512vl avx512dq avx512_bf16",
     {"ONEDNN_MAX_CPU_ISA": "AVX2", "TF_ENABLE_ONEDNN_OPTS": "0"}, False),
    # An AVX2-only CPU: TensorFlow runs bfloat16 on Eigen there.
    ("avx2 fma", {"ONEDNN_MAX_CPU_ISA": "AVX2"}, False),
])
def test_bf16_blocked_only_under_a_cap_below_avx512_on_avx512(extra, environ,
                                                             blocked):
  # The flags as given (the template's own avx512f left out).
  features = cpu_features.parse_cpuinfo(
      CPUINFO.replace("avx512f {extra}", "{extra}").format(
          extra="sse4_1 avx " + extra))
  reason = cpu_features.bf16_blocked_by_isa_cap(features, environ)
  assert (reason is not None) == blocked
  if blocked:
    assert f"ONEDNN_MAX_CPU_ISA={environ['ONEDNN_MAX_CPU_ISA']}" in reason
    assert "TF_ENABLE_ONEDNN_OPTS=0" in reason
