"""The AVC table (PAPER.md §5): supervised baselines beside L3-Net.

  python -m experiments.avc_table --l3_workdir=runs/demo \
      --baselines_config=demo --output_dir=runs/avc_table \
      [--l3_workdir=runs/flickr ...] [--split=test] [--record_dir=results]

One column per --l3_workdir (a trained L3-Net; its dataset and evaluation
set define the column). On a labelled dataset the two baselines are trained
on its labels (resuming if their workdirs exist) and evaluated on the same
fixed pairs as L3-Net. Writes <output_dir>/avc_table.{json,md}; with
--record_dir, one report record per filled cell.
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import json
import os
import time

from absl import app
from absl import flags
from absl import logging

from experiments import configs
from l3_tf.evaluation import avc_table
from l3_tf.evaluation import records
from l3_tf.training import distribute
from l3_tf.training import train
from l3_tf.training import workdir as workdir_lib

_L3_WORKDIRS = flags.DEFINE_multi_string(
    "l3_workdir", None, "trained L3-Net workdir (one per column)",
    required=True)
_BASELINES = flags.DEFINE_enum("baselines_config", "paper", list(configs.NAMES),
                               "experiments/configs/baselines_<name>.py")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "the table's folder",
                                  required=True)
_SPLIT = flags.DEFINE_string("split", "test", "the tested split")
_NUM_PAIRS = flags.DEFINE_integer(
    "num_pairs", None, "evaluation pairs (default: data.eval_num_pairs)")
_RECORD_DIR = flags.DEFINE_string("record_dir", None,
                                  "write report records here (e.g. results)")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  env = records.environment()
  command = records.command("experiments.avc_table")
  baselines = configs.get_baselines_config(_BASELINES.value)
  columns = []
  try:
    first = workdir_lib.read_config(_L3_WORKDIRS.value[0])
    strategy = distribute.make_strategy(first.train.devices)
    for l3_workdir in _L3_WORKDIRS.value:
      started = time.perf_counter()
      col = avc_table.column(l3_workdir, baselines, _OUTPUT_DIR.value,
                             _SPLIT.value, _NUM_PAIRS.value, strategy)
      col["details"]["seconds"] = time.perf_counter() - started
      columns.append(col)
      if _RECORD_DIR.value:
        for method, record in avc_table.make_records(
            col, command, records.note_end(dict(env)),
            col["details"]["seconds"]).items():
          name = avc_table.column_name(
              f"avc_{col['dataset']}_{method}".lower().replace(" ", "_"))
          records.write_record(record, os.path.join(_RECORD_DIR.value,
                                                    f"{name}.json"))
  except (ValueError, FileNotFoundError, train.TrainingDiverged,
          workdir_lib.WorkdirLocked) as e:
    raise SystemExit(f"error: {e}") from None
  except train.TrainingInterrupted as e:  # the baselines' training: rerun
    logging.warning("%s", e)
    raise SystemExit(143) from None
  paths = avc_table.write_table(columns, _OUTPUT_DIR.value)
  logging.info("wrote %s", paths)
  print(avc_table.render_markdown(columns))
  print("AVC_TABLE " + json.dumps(
      {c["dataset"]: {m: (None if cell is None else cell["accuracy"])
                      for m, cell in c["cells"].items()} for c in columns}))


if __name__ == "__main__":
  app.run(main)
