"""AVC accuracy of a trained workdir on a fixed, balanced set of pairs.

  python -m experiments.eval_avc --workdir=runs/demo --split=test

Writes <workdir>/eval_<split>.json (accuracy, num_pairs, step, ...).
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import json

from absl import app
from absl import flags

from experiments import cli

from l3_tf.training import evaluate

_WORKDIR = flags.DEFINE_string("workdir", None, "training directory",
                               required=True)
_SPLIT = flags.DEFINE_string("split", None,
                             "split to evaluate (default: data.eval_split)")
_NUM_PAIRS = flags.DEFINE_integer(
    "num_pairs", None, "evaluation pairs (default: data.eval_num_pairs)")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  try:
    results = evaluate.evaluate_workdir(_WORKDIR.value, _SPLIT.value,
                                        _NUM_PAIRS.value)
  except (ValueError, FileNotFoundError) as e:
    raise SystemExit(f"error: {e}") from None
  print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
  cli.run(main)
