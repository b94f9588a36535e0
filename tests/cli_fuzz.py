"""Fuzzes the binaries' command lines in one process (run by cli_fuzz_test).

  python tests/cli_fuzz.py FIXTURES_JSON EXAMPLES SEED

FIXTURES_JSON names real paths: "workdir" (a tiny trained workdir),
"saved_model" (its export), "file" (a plain file), "empty_dir", "scratch"
(a folder for outputs). For each binary, hypothesis draws command lines
(known flags with hostile values, `--set section.field=value` overrides,
unknown flags, stray arguments) and runs the binary's real entry point
(flag parsing included) in this process. Each case must end in exit 0, 1
or 2, with a message on stderr when not 0, and no exception other than
SystemExit; a failed `train_avc` must leave no checkpoint or lock behind.
Prints one JSON line: {"cases": {binary: n}, "exits": {binary: {code: n}},
"problems": [...], "known": [...]}.

Flags are global in absl: each binary is imported, fuzzed, then its flags
are deleted before the next one is imported.
"""

import collections
import contextlib
import importlib
import io
import json
import os
import shutil
import sys
import traceback

from absl import app
from absl import flags
import hypothesis
from hypothesis import strategies as st

FLAGS = flags.FLAGS

# (module, entry, required flags (always given, mostly a real path),
#  other flags, positional arguments drawn from)
BINARIES = (
    ("experiments.train_avc", "cli", ("workdir",), ("config", "set"), ()),
    ("experiments.eval_avc", "cli", ("workdir",), ("split", "num_pairs"), ()),
    ("experiments.export", "cli", ("workdir", "output"),
     ("checkpoint", "compute_dtype", "overwrite", "verify"), ()),
    ("experiments.score", "run", ("model",),
     ("image", "audio", "video", "at_seconds", "heatmap"), ()),
    ("experiments.embed", "run", ("model", "output_dir"),
     ("hop_seconds", "center", "batch_size", "embedding", "overwrite",
      "compute_dtype", "progress"), ("audio", "image", "video")),
    ("experiments.audio_transfer", "cli", ("dataset", "output_dir"),
     ("manual_dir", "weights", "random_config", "seed", "cache_dir",
      "data_dir", "hop_seconds", "compute_dtype", "c_grid", "inner_folds",
      "max_clips_per_split", "no_feature_cache"), ()),
)

# Binaries whose argument handling another issue owns: their problems are
# reported under "known" (printed by the test) rather than failing it.
KNOWN_ELSEWHERE = {}  # binary module -> the issue that owns its problems

SECTIONS = ("train", "data", "model", "audio", "image", "nosuch", "")
FIELDS = ("num_steps", "learning_rate", "batch_size_per_replica",
          "global_batch_size", "max_bad_steps", "devices", "data_dir",
          "dataset", "train_split", "group_videos", "shuffle_videos",
          "width_multiplier", "sample_rate_hz", "crop_size", "mixed_precision",
          "seed", "eval_num_pairs", "no_such_field", "")


def _values(paths):
  special = st.sampled_from([
      "", " ", "0", "-1", "1", "2", "7", "1e30", "-1e30", "1e400", "nan",
      "inf", "-inf", "9" * 40, "0.5", "None", "none", "true", "false",
      "[1, 2]", "{}", "a,b", "=", "\u00e9t\u00e9", "\u4e2d\u6587",
      "\U0001F600", "\x00", "--", "-", "test", "demo", "paper", "random",
      "train", "validation", "esc10", "float32", "bfloat16", "512", "6144",
      "/no/such/dir", "/no/such/file.wav", *paths.values()])
  return st.one_of(special, st.text(max_size=12))


def _set_values(paths):
  return st.builds(lambda s, f, v: f"{s}.{f}={v}" if s else f"{f}={v}",
                   st.sampled_from(SECTIONS), st.sampled_from(FIELDS),
                   _values(paths))


def _argv(required, names, words, paths):
  values = _values(paths)
  real = st.sampled_from(sorted(paths.values()) + ["esc10", "/no/such/dir"])
  known = st.tuples(st.sampled_from(names), values).map(
      lambda nv: f"--{nv[0]}={nv[1]}")
  flag = st.one_of(
      known, known, known,
      _set_values(paths).map(lambda s: f"--set={s}"),
      st.sampled_from(names).map(lambda n: f"--{n}"),  # bool or missing value
      st.sampled_from(names).map(lambda n: f"--no{n}"),
      st.text(max_size=8).map(lambda t: f"--{t}"),  # unknown flags
  )
  datasets = st.sampled_from(["esc10", "esc50", "dcase2013_scenes", "x"])
  needed = st.tuples(*[
      st.one_of(datasets if n == "dataset" else real, real, values).map(
          lambda v, n=n: f"--{n}={v}") for n in required])
  positional = st.lists(st.one_of(st.sampled_from(words), real, values)
                        if words else values, max_size=3 if words else 1)
  return st.builds(lambda need, more, args: [*need, *more, *args],
                   needed, st.lists(flag, max_size=4), positional)


class _Outcome:

  def __init__(self, binary):
    self.binary = binary
    self.exits = collections.Counter()
    self.problems = []


def _run_one(module, entry, argv, outcome, scratch):
  prog = module.__name__.rsplit(".", 1)[1]
  FLAGS.unparse_flags()
  stderr = io.StringIO()
  code = 0
  try:
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(
        io.StringIO()):
      sys.argv = [prog, *argv]
      if entry == "cli" and hasattr(module, "cli"):
        module.cli.run(module.main, argv=[prog, *argv])
      elif entry == "cli":  # a binary still on plain absl.app.run
        app.run(module.main, argv=[prog, *argv])
      else:
        getattr(module, entry)()
  except SystemExit as e:
    if isinstance(e.code, str):
      stderr.write(e.code)
      code = 1
    else:
      code = e.code or 0
  except BaseException as e:  # pylint: disable=broad-except
    outcome.problems.append({
        "binary": prog, "argv": argv, "problem": "traceback",
        "exception": f"{type(e).__name__}: {str(e)[:300]}",
        "where": traceback.format_tb(e.__traceback__)[-1][:300]})
    return
  outcome.exits[str(code)] += 1
  message = stderr.getvalue().strip()
  if code not in (0, 1, 2):
    outcome.problems.append({"binary": prog, "argv": argv,
                             "problem": f"exit {code}", "stderr": message[-300:]})
  elif code and not message:
    outcome.problems.append({"binary": prog, "argv": argv,
                             "problem": f"exit {code} without a message"})
  elif "Traceback (most recent call last)" in message:
    outcome.problems.append({"binary": prog, "argv": argv,
                             "problem": "traceback on stderr",
                             "stderr": message[-300:]})
  if prog == "train_avc" and code:
    for left in ("checkpoints", "lock"):
      if os.path.exists(os.path.join(scratch, "train", left)):
        outcome.problems.append({"binary": prog, "argv": argv,
                                 "problem": f"failed run left {left}"})


def fuzz(paths, examples: int, seed: int) -> dict:
  report = {"cases": {}, "exits": {}, "problems": [], "known": []}
  for name, entry, required, optional, words in BINARIES:
    module = importlib.import_module(name)
    outcome = _Outcome(name)
    scratch = paths["scratch"]

    @hypothesis.seed(seed)
    @hypothesis.settings(max_examples=examples, deadline=None, database=None,
                         derandomize=False, phases=[hypothesis.Phase.generate],
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(_argv(required, required + optional, words, paths))
    def case(argv):
      # A fresh workdir for train_avc: its leftovers are checked.
      if name.endswith("train_avc"):
        argv = [f"--workdir={os.path.join(scratch, 'train')}", *argv[1:]]
        shutil.rmtree(os.path.join(scratch, "train"), ignore_errors=True)
      _run_one(module, entry, argv, outcome, scratch)

    # Fixed cases first: an unknown flag is bad usage (exit 2, one line).
    before = outcome.exits["2"]
    _run_one(module, entry, ["--no_such_flag=1"], outcome, scratch)
    if outcome.exits["2"] != before + 1:
      outcome.problems.append({"binary": name, "argv": ["--no_such_flag=1"],
                               "problem": "an unknown flag did not exit 2"})
    case()
    report["cases"][name] = sum(outcome.exits.values())
    report["exits"][name] = dict(outcome.exits)
    if name in KNOWN_ELSEWHERE:
      report["known"].extend(dict(p, owner=KNOWN_ELSEWHERE[name])
                             for p in outcome.problems)
    else:
      report["problems"].extend(outcome.problems)
    # Forget the binary's flags so the next one can define its own.
    for flag_name in [f.name for f in
                      FLAGS.flags_by_module_dict().get(name, [])]:
      delattr(FLAGS, flag_name)
    del sys.modules[name]
  return report


def main():
  paths_file, examples, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
  with open(paths_file) as f:
    paths = json.load(f)
  report = fuzz(paths, examples, seed)
  print("FUZZ_REPORT " + json.dumps(report, default=str))


if __name__ == "__main__":
  main()
