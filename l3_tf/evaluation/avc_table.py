"""The AVC table of PAPER.md §5: rows = methods, columns = datasets.

Each column is one trained L3-Net workdir; its dataset (and the whole
`data` section of its config: split, seed, number of pairs, grouping) defines
the column's fixed, balanced evaluation pairs. On a labelled dataset the two
supervised baselines (`l3_tf.evaluation.baselines`) are trained on its labels and
evaluated on exactly those pairs; on an unlabelled one (Flickr-SoundNet)
their cells are empty, as in the paper.

  <output_dir>/<column>/classifiers/             classifiers workdir
  <output_dir>/<column>/supervised_pretraining/  training workdir of the head
  <output_dir>/avc_table.json                    every cell's full metrics
  <output_dir>/avc_table.md                      the table in markdown
"""

import json
import math
import os
import re
from typing import Any

import tensorflow as tf

from l3_tf.data import input_pipeline
from l3_tf.evaluation import baselines as baselines_lib
from l3_tf.evaluation import records
from l3_tf.training import evaluate as evaluate_lib
from l3_tf.training import workdir as workdir_lib

# The data fields that define a column's evaluation pairs.
EVAL_SET_FIELDS = ("dataset", "data_dir", "group_videos", "pairs_per_video",
                   "eval_seed")


def column_name(dataset: str) -> str:
  """A folder-safe column name: "synthetic_av/default" -> "synthetic_av_default"."""
  return re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset)


def eval_set(config, split: str, num_pairs: int) -> dict[str, Any]:
  """What identifies a column's evaluation pairs."""
  fields = {k: getattr(config.data, k) for k in EVAL_SET_FIELDS}
  fields.update({"split": split, "num_pairs": num_pairs})
  return fields


def evaluate_workdir(workdir: str, split: str, num_pairs: int
                     ) -> dict[str, Any]:
  """`evaluate.evaluate_workdir`, or its JSON when that already holds the
  latest checkpoint's finite metrics on the same split and number of pairs
  (the pairs are a function of the workdir's config, which does not
  change). A JSON with a NaN (written before evaluation refused non-finite
  logits) is evaluated again, which names the problem."""
  path = evaluate_lib.eval_path(workdir, split)
  if tf.io.gfile.exists(path):
    with tf.io.gfile.GFile(path) as f:
      stored = json.load(f)
    if (stored.get("checkpoint") == workdir_lib.latest_checkpoint(workdir)
        and stored.get("num_pairs") == num_pairs
        and all(math.isfinite(value) for value in stored.values()
                if isinstance(value, float))):
      return stored
  return evaluate_lib.evaluate_workdir(workdir, split, num_pairs)


def column(l3_workdir: str, baselines: baselines_lib.BaselinesConfig,
           output_dir: str, split: str = "test", num_pairs: int | None = None,
           strategy: tf.distribute.Strategy | None = None) -> dict[str, Any]:
  """Trains (or resumes) the baselines of one column and evaluates all rows.

  Args:
    l3_workdir: a trained L3-Net workdir; its config's data section is the
      column's dataset and evaluation set.
    baselines: the baselines' schedules.
    output_dir: the table's folder (the column's workdirs go under it).
    split: the tested split (the paper's table: test).
    num_pairs: evaluation pairs (default: the L3 config's eval_num_pairs).
    strategy: for the baselines' training.

  Returns:
    {"dataset", "eval_set", "cells": {method: metrics or None}, "details"}.
  """
  config = workdir_lib.read_config(l3_workdir)
  num_pairs = num_pairs or config.data.eval_num_pairs
  l3 = evaluate_workdir(l3_workdir, split, num_pairs)
  l3["weights"] = l3_workdir
  cells = {baselines_lib.L3_NET: l3,
           baselines_lib.DIRECT_COMBINATION: None,
           baselines_lib.SUPERVISED_PRETRAINING: None}
  details = {"l3_workdir": l3_workdir, "l3_config": config.name,
             "l3_step": l3["step"], "labelled": False}
  builder = input_pipeline.load_builder(config.data.dataset,
                                        config.data.data_dir)
  if "label" in builder.info.features.keys():
    folder = os.path.join(output_dir, column_name(config.data.dataset))
    classifiers_dir = os.path.join(folder, "classifiers")
    pretraining_dir = os.path.join(folder, "supervised_pretraining")
    classifiers = baselines_lib.train_classifiers(config, baselines,
                                                  classifiers_dir, strategy)
    cells[baselines_lib.DIRECT_COMBINATION] = (
        baselines_lib.evaluate_direct_combination(classifiers_dir, split,
                                                  num_pairs))
    baselines_lib.train_supervised_pretraining(classifiers_dir,
                                               pretraining_dir, strategy)
    cells[baselines_lib.SUPERVISED_PRETRAINING] = evaluate_workdir(
        pretraining_dir, split, num_pairs)
    details.update({
        "labelled": True,
        "classifiers_workdir": classifiers_dir,
        "supervised_pretraining_workdir": pretraining_dir,
        "classifiers": classifiers["eval"],
        "classifiers_step": classifiers["step"],
        "classifiers_seconds": classifiers["wall_seconds"],
        "num_classes": builder.info.features["label"].num_classes,
    })
  sets = {method: eval_set(config, cell["split"], cell["num_pairs"])
          for method, cell in cells.items() if cell is not None}
  if len({json.dumps(s, sort_keys=True) for s in sets.values()}) != 1:
    raise ValueError(f"the rows of column {config.data.dataset!r} were "
                     f"evaluated on different pairs: {sets}")
  return {"dataset": config.data.dataset,
          "eval_set": eval_set(config, split, num_pairs),
          "cells": cells, "details": details}


def render_markdown(columns: list[dict[str, Any]]) -> str:
  """Rows = methods (paper order), columns = datasets, cells = accuracy."""
  header = "| method | " + " | ".join(c["dataset"] for c in columns) + " |"
  lines = [header, "|---|" + "---|" * len(columns)]
  for method in baselines_lib.METHODS:
    cells = []
    for c in columns:
      cell = c["cells"][method]
      cells.append("-" if cell is None else f"{100 * cell['accuracy']:.1f}%")
    lines.append(f"| {method} | " + " | ".join(cells) + " |")
  notes = [f"- {c['dataset']}: {c['eval_set']['num_pairs']} fixed balanced "
           f"pairs of the {c['eval_set']['split']} split (eval seed "
           f"{c['eval_set']['eval_seed']}); chance 50%." for c in columns]
  return "\n".join(lines + [""] + notes) + "\n"


def write_table(columns: list[dict[str, Any]], output_dir: str
                ) -> dict[str, str]:
  """Writes avc_table.json and avc_table.md; returns their paths."""
  os.makedirs(output_dir, exist_ok=True)
  json_path = os.path.join(output_dir, "avc_table.json")
  with open(json_path, "w") as f:
    json.dump({"columns": columns}, f, indent=2, sort_keys=True, default=str)
  md_path = os.path.join(output_dir, "avc_table.md")
  with open(md_path, "w") as f:
    f.write(render_markdown(columns))
  return {"json": json_path, "markdown": md_path}


def make_records(col: dict[str, Any], command_line: str,
                 env: dict[str, Any] | None = None,
                 run_seconds: float | None = None
                 ) -> dict[str, dict[str, Any]]:
  """One report record per filled cell of a column, by method."""
  config = workdir_lib.read_config(col["details"]["l3_workdir"])
  data = (f"{col['dataset']}: {col['eval_set']['num_pairs']} fixed balanced "
          f"pairs from the {col['eval_set']['split']} split")
  out = {}
  for method, cell in col["cells"].items():
    if cell is None:
      continue
    if method == baselines_lib.L3_NET:
      training = records.training_scale(config, cell["step"])
    else:
      details = col["details"]
      baselines = baselines_lib.read_baselines_config(
          details["classifiers_workdir"])
      training = (f"supervised classifiers: {details['classifiers_step']} "
                  f"steps on the {details['num_classes']} labels of "
                  f"{col['dataset']} ({config.data.train_split} split)")
      if method == baselines_lib.SUPERVISED_PRETRAINING:
        training += f"; fusion head: {cell['step']} AVC steps"
      else:
        training += (f"; threshold from {cell['threshold_num_pairs']} "
                     f"{cell['threshold_split']} pairs")
      training += f" (baselines config {baselines.name})"
    out[method] = records.make_record(
        experiment="avc", dataset=col["dataset"], method=method,
        metric="accuracy", value=cell["accuracy"],
        scale={"data": data,
               "network": records.network_scale(config.model),
               "training": training},
        details={k: cell[k] for k in ("positive_accuracy",
                                      "negative_accuracy", "num_pairs",
                                      "num_videos", "split", "eval_seed")
                 if k in cell},
        command_line=command_line, run_seconds=run_seconds, env=env)
  return out
