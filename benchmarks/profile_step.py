"""Where the training step's time goes, per op kind, from the TF profiler.

Traces `--steps` training steps (`l3_tf.training.step.make_train_step`, random
inputs) with `tf.profiler`, reads the trace (the `.xplane.pb` the trace
viewer shows) and sums each TensorFlow op's time by kind: convolutions
(forward, input gradient, kernel gradient), BatchNorm (fused kernel, or the
generic ops Keras' BN is made of), ReLU, pooling, the optimizer update and
the rest. Op times on the two inter-op threads overlap, so shares are of
the summed op time, not of the wall time (printed beside it).

  python benchmarks/profile_step.py --width_multiplier=0.125 --batch_size=32 \\
      [--nofused_batch_norm] [--dtype=mixed_bfloat16]
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import collections
import glob
import json
import re
import tempfile
import time

from absl import app
from absl import flags

import keras
import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from l3_tf.model import networks as model_lib
from l3_tf.training import step as step_lib

_BATCH = flags.DEFINE_integer("batch_size", 32, "pairs per step")
_STEPS = flags.DEFINE_integer("steps", 2, "traced steps (after 2 warm-up)")
_WIDTH = flags.DEFINE_float("width_multiplier", 0.125, "network width")
_FUSED = flags.DEFINE_bool("fused_batch_norm", True, "model.fused_batch_norm")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "mixed_bfloat16"],
                           "compute policy of the model")
_TOP = flags.DEFINE_integer("top", 12, "op types listed")

# (kind, op-type pattern); first match wins. Op types are what the trace
# shows, e.g. "_MklNativeConv2DBackpropFilter" with oneDNN.
KINDS = (
    ("conv kernel gradient", r"Conv2DBackpropFilter"),
    ("conv input gradient", r"Conv2DBackpropInput"),
    ("conv forward", r"Conv2D"),
    ("batch norm (fused)", r"FusedBatchNorm"),
    ("relu", r"^(_Mkl|_MklNative)?Relu"),
    ("pooling", r"MaxPool|^Max$"),
    ("layout / casts", r"Transpose|Reorder|ToTf|Cast"),
    ("optimizer update", r"Apply|Assign(Add|Sub)?Variable"),
    # What Keras' generic BN (and the L2 terms) are made of.
    ("elementwise / reductions (generic BN, L2)",
     r"^(Mul|AddV2|Add|AddN|Sub|SquaredDifference|Mean|Sum|Tile|Rsqrt|"
     r"RsqrtGrad|Square|Neg|RealDiv|BroadcastTo|Reshape|Sqrt)$"),
)


def kind_of(op_type: str) -> str:
  for kind, pattern in KINDS:
    if re.search(pattern, op_type):
      return kind
  return "other"


def op_seconds(xspace: xplane_pb2.XSpace) -> collections.Counter:
  """Summed seconds per TF op type over the host's executor threads."""
  seconds = collections.Counter()
  for plane in xspace.planes:
    if not plane.name.startswith("/host:CPU"):
      continue
    for line in plane.lines:
      for event in line.events:
        name = plane.event_metadata[event.metadata_id].name
        if ":" not in name or name.startswith("ExecutorState"):
          continue
        op_type = name.rsplit(":", 1)[1].strip()
        # The function call and executor wrappers span the ops they run.
        if op_type == "Run" or op_type.startswith("__inference"):
          continue
        seconds[op_type] += event.duration_ps / 1e12
  return seconds


def profile(config: model_lib.ModelConfig, batch: int, steps: int) -> dict:
  model = model_lib.avc_network(config)
  optimizer = keras.optimizers.Adam(1e-4)
  optimizer.build(model.trainable_variables)
  train_step = step_lib.make_train_step(
      model, optimizer, tf.distribute.get_strategy(), batch,
      tf.Variable(0, dtype=tf.int64))
  inputs = {"image": tf.random.uniform([batch, 224, 224, 3], -1, 1, seed=1),
            "spectrogram": tf.random.normal([batch, 257, 199, 1], seed=2)}
  labels = tf.cast(tf.range(batch) % 2, tf.int32)
  for _ in range(2):
    float(train_step(inputs, labels)["loss"])
  logdir = tempfile.mkdtemp(prefix="l3_profile_")
  tf.profiler.experimental.start(logdir)
  started = time.perf_counter()
  for _ in range(steps):
    float(train_step(inputs, labels)["loss"])
  wall = (time.perf_counter() - started) / steps
  tf.profiler.experimental.stop()
  xspace = xplane_pb2.XSpace()
  path = sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1]
  with open(path, "rb") as f:
    xspace.ParseFromString(f.read())
  by_type = op_seconds(xspace)
  by_kind = collections.Counter()
  for op_type, value in by_type.items():
    by_kind[kind_of(op_type)] += value
  total = sum(by_kind.values())
  return {
      "trace": logdir,
      "wall_seconds_per_step": round(wall, 3),
      "op_seconds_per_step": round(total / steps, 3),
      "share_by_kind": {k: round(v / total, 3)
                        for k, v in by_kind.most_common()},
      "top_op_types": {k: round(v / steps, 3)
                       for k, v in by_type.most_common(_TOP.value)},
  }


def main(argv):
  del argv
  keras.mixed_precision.set_global_policy(_DTYPE.value)
  config = model_lib.ModelConfig(width_multiplier=_WIDTH.value,
                                 fused_batch_norm=_FUSED.value)
  result = {"width_multiplier": _WIDTH.value, "batch_size": _BATCH.value,
            "fused_batch_norm": _FUSED.value, "dtype": _DTYPE.value,
            **profile(config, _BATCH.value, _STEPS.value)}
  print(json.dumps(result, indent=1))


if __name__ == "__main__":
  app.run(main)
