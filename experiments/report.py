"""Regenerates the results table of WORKSPACE.md from results/*.json.

  python -m experiments.report [--results_dir=results] \
      [--workspace=WORKSPACE.md] [--print_only]

Only the part between the table's markers (`l3_tf.evaluation.report.BEGIN` / `END`)
changes; the first run inserts the marked table after "## Results". Records
come from the experiment binaries' --record / --record_dir flags.
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import os

from absl import app
from absl import flags

from l3_tf.evaluation import records
from l3_tf.evaluation import report

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_RESULTS_DIR = flags.DEFINE_string("results_dir", os.path.join(_ROOT, "results"),
                                   "folder of the record JSON files")
_WORKSPACE = flags.DEFINE_string("workspace", os.path.join(_ROOT, "WORKSPACE.md"),
                                 "the markdown file holding the table")
_PRINT_ONLY = flags.DEFINE_bool("print_only", False,
                                "print the table, change no file")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  try:
    table = report.render_table(records.read_records(_RESULTS_DIR.value))
    if _PRINT_ONLY.value:
      print(table)
      return
    with open(_WORKSPACE.value) as f:
      text = f.read()
    updated = report.update_text(text, table)
  except (ValueError, FileNotFoundError) as e:
    raise SystemExit(f"error: {e}") from None
  with open(_WORKSPACE.value, "w") as f:
    f.write(updated)
  print(f"updated the results table in {_WORKSPACE.value} "
        f"({table.count(chr(10)) - 4} rows)")


if __name__ == "__main__":
  app.run(main)
