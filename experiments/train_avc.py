"""Trains L3-Net on the audio-visual correspondence task.

  python -m experiments.train_avc --config=demo --workdir=runs/demo \
      [--set train.num_steps=1000 --set data.data_dir=/data ...]

Resumes from the latest checkpoint in the workdir. One device by default;
`--set train.devices=/gpu:0,/gpu:1` or all visible GPUs mirror; TF_CONFIG
with several tasks trains across machines (MultiWorkerMirroredStrategy);
`--set train.cpu_replicas=16` rehearses 16 replicas on this CPU. The
resolved plan (replicas, batch, BN, precision, XLA, steps per loop, input)
is logged before anything else.
Exit status: 0 done, 1 bad configuration, a damaged record (named), another
trainer on the workdir, diverged (train.max_bad_steps non-finite steps in
a row), or (train.jit_compile) an XLA step that differs from the uncompiled
one on the first batch, 2 bad usage, 143 stopped by SIGTERM / Ctrl-C
(after writing a checkpoint).
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import json

from absl import app
from absl import flags
from absl import logging

from experiments import cli
from experiments import flags_lib
from l3_tf.data import bad_records
from l3_tf.model import finite
from l3_tf.training import compiled_check
from l3_tf.training import distribute
from l3_tf.training import train
from l3_tf.training import workdir as workdir_lib

_WORKDIR = flags.DEFINE_string("workdir", None, "training directory",
                               required=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  try:
    config = flags_lib.resolved_config()
    strategy = distribute.make_strategy(config.train.devices,
                                        config.train.cpu_replicas)
    result = train.train_and_evaluate(config, _WORKDIR.value, strategy)
  except bad_records.BadRecordError as e:  # a damaged shard or frame
    raise SystemExit(f"error: {e}") from None
  except finite.NonFiniteError as e:  # resuming from a NaN checkpoint
    raise SystemExit(f"error: {e}") from None
  except ValueError as e:
    logging.error("bad configuration: %s", e)
    raise SystemExit(f"error: {e}") from None
  except (train.TrainingDiverged, compiled_check.CompiledStepMismatch,
          workdir_lib.WorkdirLocked) as e:
    raise SystemExit(f"error: {e}") from None
  except train.TrainingInterrupted as e:
    logging.warning("%s", e)
    raise SystemExit(143) from None
  print("TRAIN_RESULT " + json.dumps(result, default=str))


if __name__ == "__main__":
  cli.run(main)
