"""Trains L3-Net on the audio-visual correspondence task.

  python -m experiments.train_avc --config=demo --workdir=runs/demo \
      [--set train.num_steps=1000 --set data.data_dir=/data ...]

Resumes from the latest checkpoint in the workdir. One device by default;
`--set train.devices=/gpu:0,/gpu:1` or all visible GPUs mirror; TF_CONFIG
with several tasks trains across machines (MultiWorkerMirroredStrategy).
Exit status: 0 done, 1 bad configuration, 143 stopped by SIGTERM / Ctrl-C
(after writing a checkpoint).
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import json

from absl import app
from absl import flags
from absl import logging

from experiments import flags_lib
from l3_tf import distribute
from l3_tf import train

_WORKDIR = flags.DEFINE_string("workdir", None, "training directory",
                               required=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  try:
    config = flags_lib.resolved_config()
    strategy = distribute.make_strategy(config.train.devices)
    result = train.train_and_evaluate(config, _WORKDIR.value, strategy)
  except ValueError as e:
    logging.error("bad configuration: %s", e)
    raise SystemExit(f"error: {e}") from None
  except train.TrainingInterrupted as e:
    logging.warning("%s", e)
    raise SystemExit(143) from None
  print("TRAIN_RESULT " + json.dumps(result, default=str))


if __name__ == "__main__":
  app.run(main)
