"""Fuzzed command lines of every binary end in exit 0/1/2, never a traceback.

Runs `tests/cli_fuzz.py` (hypothesis, fixed seed) in one subprocess: a
bounded number of cases per binary in `make test`; more with
`L3_FUZZ_EXAMPLES=500` (and another `L3_FUZZ_SEED`).
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import warnings

from tests import cli_fuzz
from tests import testing

EXAMPLES = int(os.environ.get("L3_FUZZ_EXAMPLES", "12"))
SEED = int(os.environ.get("L3_FUZZ_SEED", "0"))


class FuzzFinding(UserWarning):
  """A problem the fuzzer found in a binary another issue owns."""


def test_fuzzed_command_lines(tiny_export, tmp_path):
  # Copies: a fuzzed --overwrite must not touch the session's fixtures.
  workdir = shutil.copytree(tiny_export.workdir, tmp_path / "workdir")
  saved_model = shutil.copytree(tiny_export.saved_model, tmp_path / "export")
  plain = tmp_path / "plain.txt"
  plain.write_text("not media\n")
  (tmp_path / "empty").mkdir()
  (tmp_path / "scratch").mkdir()
  paths = {"workdir": str(workdir), "saved_model": str(saved_model),
           "file": str(plain), "empty_dir": str(tmp_path / "empty"),
           "scratch": str(tmp_path / "scratch")}
  paths_file = tmp_path / "paths.json"
  paths_file.write_text(json.dumps(paths))
  env = dict(os.environ, PYTHONPATH=str(testing.REPO_ROOT),
             TF_CPP_MIN_LOG_LEVEL="3",
             L3_CACHE_DIR=str(tmp_path / "cache"))
  run = subprocess.run(
      [sys.executable, str(pathlib.Path(__file__).parent / "cli_fuzz.py"),
       str(paths_file), str(EXAMPLES), str(SEED)],
      env=env, capture_output=True, text=True, timeout=1200,
      cwd=tmp_path / "scratch")
  assert run.returncode == 0, run.stderr[-3000:]
  line = [l for l in run.stdout.splitlines() if l.startswith("FUZZ_REPORT ")]
  assert line, (run.stdout[-2000:], run.stderr[-3000:])
  report = json.loads(line[-1].split(" ", 1)[1])
  assert not report["problems"], json.dumps(report["problems"][:5], indent=1)
  for known in report["known"]:  # owned by another issue: shown, not failed
    warnings.warn(f"known CLI problem: {json.dumps(known)}", FuzzFinding)
  for binary, cases in report["cases"].items():
    assert cases == EXAMPLES + 1, (binary, cases)
    if binary not in cli_fuzz.KNOWN_ELSEWHERE:  # some usage errors drawn
      assert report["exits"][binary].get("2", 0) >= 1, (binary,
                                                         report["exits"])
