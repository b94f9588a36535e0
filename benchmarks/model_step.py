"""Training-step speed of the full L3-Net against this machine's conv peak.

Prints, for the full model at batch 16 (one forward + backward + Adam update):
pairs/s, the achieved GFLOP/s with FLOPs counted analytically, the fp32 peak
of one large 3x3 convolution measured in the same run, and their ratio.

FLOP count (multiply-add = 2 FLOPs). A 3x3 "same" conv on an H x W map with
Cin -> Cout channels costs 2 * 9 * H * W * Cin * Cout forward. Backward costs
the same again for the input gradient and again for the kernel gradient, so a
training step costs 3x forward, except that the first conv of each tower needs
no input gradient (2x). BN, ReLU, pooling and the fusion head are counted as
zero: they are memory-bound and their FLOPs are < 1% of the convs'.

  python benchmarks/model_step.py [--batch_size=16] [--steps=5] [--dtype=float32]

With --compare_jit, it instead times the real training step
(`l3_tf.training.step.make_train_step`) without and with XLA (`train.jit_compile`),
alternating timed steps of the two so that both see the same load, and
prints both medians, their ratio, and the largest difference of loss and
weights after the same steps from the same start.

With --peer=pytorch (the `bench` extra), it instead times, in this one
process and interleaved step by step (A, B, C, A, B, C, ...) so that all see
the same load: this project's training step (`l3_tf.training.step.make_train_step`),
the same network with Keras' generic BatchNormalization
(`model.fused_batch_norm=False`, "plain Keras"), and the same architecture
in PyTorch (`benchmarks/peer_pytorch.py`), in float32 and, where the CPU has
bf16 units (AMX or AVX512-BF16), in bfloat16 (Keras mixed_bfloat16 vs torch
CPU autocast). It prints the CPU model, its bf16 features, the numeric path
TensorFlow ran (oneDNN or Eigen kernels, and oneDNN's instruction set under
`ONEDNN_MAX_CPU_ISA`), every rate, the ratios to PyTorch and each one's
share of the same-run conv peak:

  python benchmarks/model_step.py --peer=pytorch --width_multiplier=0.125 \
      --batch_size=32 --steps=3
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import dataclasses
import json
import time

from absl import app
from absl import flags

import keras
import numpy as np
import tensorflow as tf

from l3_tf.data import audio_params as audio_params_lib
from l3_tf.model import model_summary
from l3_tf.model import networks as model_lib
from l3_tf.platform import cpu_features

_BATCH = flags.DEFINE_integer("batch_size", 16, "pairs per step")
_STEPS = flags.DEFINE_integer("steps", 5, "timed steps (after 2 warm-up)")
_WIDTH = flags.DEFINE_float("width_multiplier", 1.0, "network width")
_COMPARE_JIT = flags.DEFINE_bool(
    "compare_jit", False, "time the training step without and with XLA")
_PEER = flags.DEFINE_enum(
    "peer", None, ["pytorch"],
    "also time the same architecture in this framework, interleaved")
_PEER_BF16 = flags.DEFINE_bool(
    "peer_bf16", True, "with --peer: also compare bf16 where the CPU has "
    "bf16 units")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "mixed_bfloat16"],
                           "compute policy of the model")


def conv_flops_forward(height: int, width: int, channels: int,
                       widths: tuple[int, ...]) -> list[int]:
  """Forward FLOPs per example of each conv of one tower, in order."""
  flops = []
  c_in = channels
  for block, c_out in enumerate(widths):
    for _ in range(2):
      flops.append(2 * 9 * height * width * c_in * c_out)
      c_in = c_out
    if block < 3:
      height, width = height // 2, width // 2
  return flops


def training_flops_per_pair(widths: tuple[int, ...]) -> int:
  """Analytic FLOPs of one forward + backward pass of one pair."""
  params = audio_params_lib.DEFAULT
  total = 0
  for height, width, channels in ((224, 224, 3),
                                  (params.num_bins, params.num_frames, 1)):
    per_conv = conv_flops_forward(height, width, channels, widths)
    total += 2 * per_conv[0] + 3 * sum(per_conv[1:])
  return total


def measure_conv_peak(batch: int = 16, size: int = 56, channels: int = 256,
                      repeats: int = 10, dtype: tf.DType = tf.float32) -> float:
  """GFLOP/s of a large 3x3 conv (forward, fp32 by default), best of
  `repeats`."""
  x = tf.cast(tf.random.normal([batch, size, size, channels]), dtype)
  kernel = tf.cast(tf.random.normal([3, 3, channels, channels]), dtype)
  conv = tf.function(lambda x, k: tf.nn.conv2d(x, k, 1, "SAME"))
  conv(x, kernel).numpy()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    conv(x, kernel).numpy()
    best = min(best, time.perf_counter() - start)
  flops = 2 * 9 * batch * size * size * channels * channels
  return flops / best / 1e9


def measure_training_step(config: model_lib.ModelConfig, batch: int,
                          steps: int) -> float:
  """Seconds per training step, median of `steps` after warm-up."""
  model = model_lib.avc_network(config)
  optimizer = keras.optimizers.Adam(1e-4)
  loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  inputs = {
      "image": tf.random.uniform([batch, 224, 224, 3], -1, 1),
      "spectrogram": tf.random.normal([batch, 257, 199, 1]),
  }
  labels = tf.cast(tf.range(batch) % 2, tf.int32)

  @tf.function
  def train_step(inputs, labels):
    with tf.GradientTape() as tape:
      logits = model(inputs, training=True)
      loss = loss_fn(labels, logits) + tf.add_n(model.losses)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  for _ in range(2):
    train_step(inputs, labels).numpy()
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    train_step(inputs, labels).numpy()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def _random_batch(batch: int):
  """Fixed random inputs and balanced labels of one training step."""
  inputs = {
      "image": tf.random.uniform([batch, 224, 224, 3], -1, 1, seed=1),
      "spectrogram": tf.random.normal([batch, 257, 199, 1], seed=2),
  }
  return inputs, tf.cast(tf.range(batch) % 2, tf.int32)


def compare_jit(config: model_lib.ModelConfig, batch: int, steps: int) -> dict:
  """Median seconds per step of `step_lib.make_train_step` without / with XLA.

  One model and optimizer (memory: two full-width models plus XLA's
  compilation did not fit beside other jobs), two step functions, timed
  alternately (A, B, A, B, ...) after 2 warm-up calls each. The loss of
  each function's first call, from the same weights, is reported too.
  """
  from l3_tf.training import step as step_lib

  strategy = tf.distribute.get_strategy()
  keras.utils.set_random_seed(0)
  model = model_lib.avc_network(config)
  initial = model.get_weights()
  optimizer = keras.optimizers.Adam(1e-4)
  optimizer.build(model.trainable_variables)
  step = tf.Variable(0, dtype=tf.int64)
  inputs, labels = _random_batch(batch)
  functions = {jit: step_lib.make_train_step(model, optimizer, strategy, batch,
                                          step, jit_compile=jit)
               for jit in (False, True)}
  first_loss = {}
  for jit, function in functions.items():
    model.set_weights(initial)
    first_loss[jit] = float(function(inputs, labels)["loss"])
  times = {False: [], True: []}
  for index in range(1 + steps):
    for jit, function in functions.items():
      start = time.perf_counter()
      function(inputs, labels)["loss"].numpy()
      if index >= 1:
        times[jit].append(time.perf_counter() - start)
  off, on = float(np.median(times[False])), float(np.median(times[True]))
  return {
      "batch_size": batch, "width_multiplier": config.width_multiplier,
      "dtype": keras.mixed_precision.global_policy().name,
      "timed_steps_each": steps,
      "seconds_per_step_no_jit": round(off, 3),
      "seconds_per_step_jit": round(on, 3),
      "jit_speedup": round(off / on, 3),
      "first_loss_difference": abs(first_loss[False] - first_loss[True]),
  }


def _keras_step(config: model_lib.ModelConfig, batch: int, policy: str):
  """A `step_lib.make_train_step` step on fixed random inputs, as a callable."""
  from l3_tf.training import step as step_lib

  keras.mixed_precision.set_global_policy(policy)
  try:
    model = model_lib.avc_network(config)
    optimizer = keras.optimizers.Adam(1e-4)
    optimizer.build(model.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64)
    train_step = step_lib.make_train_step(model, optimizer,
                                       tf.distribute.get_strategy(), batch,
                                       step)
  finally:
    keras.mixed_precision.set_global_policy("float32")
  inputs, labels = _random_batch(batch)
  return (lambda: float(train_step(inputs, labels)["loss"]),
          model_summary.parameter_counts(model)["total"])


def interleaved_medians(runs: dict, warmup: int, repeats: int) -> dict:
  """Median seconds of each callable in `runs` (name -> callable), called
  in turn (A, B, C, A, B, C, ...) so that all see the same load; the first
  `warmup` rounds are not timed."""
  times = {name: [] for name in runs}
  for index in range(warmup + repeats):
    for name, run in runs.items():
      start = time.perf_counter()
      run()
      if index >= warmup:
        times[name].append(time.perf_counter() - start)
  return {name: float(np.median(t)) for name, t in times.items()}


def compare_with_pytorch(config: model_lib.ModelConfig, batch: int,
                         steps: int, warmup: int = 2,
                         bfloat16: bool = True) -> dict:
  """This project vs plain Keras vs PyTorch, one process, interleaved.

  Returns:
    {"cpu": cpu_features, "torch", "float32": {...}, "bfloat16": {...} (only
    with bf16 units)}, each precision holding seconds and pairs/s per
    contender, "project_over_pytorch", "plain_keras_over_pytorch",
    "conv_peak_gflops" and each contender's "ratio_to_peak".
  """
  import peer_pytorch  # benchmarks/, the `bench` extra
  import torch

  features = cpu_features.cpu_features()
  result = {"cpu": features.as_dict(),
            "numeric_path": cpu_features.numeric_path(features),
            "torch": torch.__version__,
            "tensorflow": tf.__version__, "keras": keras.__version__,
            "batch_size": batch, "width_multiplier": config.width_multiplier,
            "widths": list(config.widths), "timed_steps": steps,
            "warmup_steps": warmup}
  blocked = cpu_features.bf16_blocked_by_isa_cap(features)
  if bfloat16 and features.has_bf16_units and blocked:
    print(f"bfloat16 not timed: {blocked}")
  precisions = ["float32"] + (["bfloat16"] if bfloat16 and
                               features.has_bf16_units and not blocked
                               else [])
  flops = training_flops_per_pair(config.widths) * batch
  for precision in precisions:
    policy = "mixed_bfloat16" if precision == "bfloat16" else "float32"
    project, parameters = _keras_step(config, batch, policy)
    plain, _ = _keras_step(
        dataclasses.replace(config, fused_batch_norm=False), batch, policy)
    peer, peer_model = peer_pytorch.make_training_step(
        config.widths, batch, bfloat16=precision == "bfloat16")
    seconds = interleaved_medians(
        {"project": project, "plain_keras": plain, "pytorch": peer},
        warmup, steps)
    peak = measure_conv_peak(
        dtype=tf.bfloat16 if precision == "bfloat16" else tf.float32)
    result[precision] = {
        "seconds_per_step": {k: round(v, 3) for k, v in seconds.items()},
        "pairs_per_second": {k: round(batch / v, 2)
                             for k, v in seconds.items()},
        "project_over_pytorch": round(seconds["pytorch"] / seconds["project"],
                                      3),
        "plain_keras_over_pytorch": round(
            seconds["pytorch"] / seconds["plain_keras"], 3),
        "project_over_plain_keras": round(
            seconds["plain_keras"] / seconds["project"], 3),
        "conv_peak_gflops": round(peak, 1),
        "ratio_to_peak": {k: round(flops / v / 1e9 / peak, 3)
                          for k, v in seconds.items()},
        "parameters": {"project": parameters,
                       "pytorch": peer_pytorch.parameter_count(peer_model)},
    }
  return result


def main(argv):
  del argv
  if _PEER.value == "pytorch":
    config = model_lib.ModelConfig(width_multiplier=_WIDTH.value)
    print(json.dumps(compare_with_pytorch(config, _BATCH.value, _STEPS.value,
                                          bfloat16=_PEER_BF16.value)))
    return
  keras.mixed_precision.set_global_policy(_DTYPE.value)
  if _COMPARE_JIT.value:
    config = model_lib.ModelConfig(width_multiplier=_WIDTH.value)
    print(json.dumps(compare_jit(config, _BATCH.value, _STEPS.value)))
    return
  config = model_lib.ModelConfig(width_multiplier=_WIDTH.value)
  peak = measure_conv_peak()
  seconds = measure_training_step(config, _BATCH.value, _STEPS.value)
  flops = training_flops_per_pair(config.widths) * _BATCH.value
  achieved = flops / seconds / 1e9
  result = {
      "numeric_path": cpu_features.numeric_path(),
      "batch_size": _BATCH.value,
      "width_multiplier": _WIDTH.value,
      "dtype": _DTYPE.value,
      "seconds_per_step": round(seconds, 3),
      "pairs_per_second": round(_BATCH.value / seconds, 2),
      "gflop_per_step": round(flops / 1e9, 1),
      "achieved_gflops": round(achieved, 1),
      "fp32_conv_peak_gflops": round(peak, 1),
      "ratio_to_peak": round(achieved / peak, 3),
  }
  print(json.dumps(result))


if __name__ == "__main__":
  app.run(main)
