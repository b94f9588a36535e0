"""The paper's 16 replicas on one CPU: the same step as one device, and BN.

Run in a fresh process (logical devices must be set before TensorFlow starts):

  python tests/replicas16.py

Splits the CPU into 16 logical devices and runs `l3_tf.training.step.make_train_step`
under MirroredStrategy with the paper's 16 pairs per replica (256 per step)
against one device holding all 256 pairs. Prints one JSON line per check:

  "equivalence"  BN-free network, SGD, 3 steps on 3 different batches:
                 the distance between the two runs' weights, the length of
                 the single device's path (the sum of its steps' norms), the
                 float round-off bound of one step (`compiled_step_bound`),
                 losses. (SGD: the update is the gradient itself; Adam
                 divides by sqrt(v), which turns round-off in a near-zero
                 gradient into up to a whole step of lr, beyond any bound.)
  "batch_norm"   network with BN, one step, for model.batch_norm
                 "synchronized" and "per_replica": largest difference of the
                 moving means and variances (and of the trained weights) to
                 the single device's, relative to the largest moving value.

The question here is distribution, not what the network sees, so the network
is 1/32 wide and its inputs are small (64 x 64 frames, 65 x 99
spectrograms, from `SMALL_IMAGE` and `SMALL_AUDIO`): every layer and the
whole step are the real ones, at a cost a 2-core test can pay 16 times.
BN momentum is 0 in the BN check, so the moving statistics after one step
are that step's batch statistics, undiluted.
"""

import json
import sys

import keras
import numpy as np
import tensorflow as tf

from l3_tf.data import audio_params as audio_params_lib
from l3_tf.data import image_ops
from l3_tf.model import networks as model_lib
from l3_tf.training import compiled_check
from l3_tf.training import distribute
from l3_tf.training import step as step_lib

REPLICAS = 16
PER_REPLICA = 16  # the paper's batch per GPU
GLOBAL = REPLICAS * PER_REPLICA  # 256
SMALL_IMAGE = image_ops.ImageParams(resize_short_side=64, crop_size=64)
# 0.5 s at 4.8 kHz, 10 ms windows, 128-point FFT: [65, 99, 1].
SMALL_AUDIO = audio_params_lib.AudioParams(sample_rate_hz=4800,
                                           clip_seconds=0.5, fft_length=128)


def batches(num: int):
  rng = np.random.default_rng(0)
  out = []
  for _ in range(num):
    out.append(({
        "image": rng.uniform(-1, 1, (GLOBAL, 64, 64, 3)).astype(np.float32),
        "spectrogram": rng.normal(
            0, 1, (GLOBAL, *SMALL_AUDIO.spectrogram_shape)).astype(np.float32),
    }, rng.permutation(np.arange(GLOBAL) % 2).astype(np.int32)))
  return out


SGD_RATE = 0.002


def build(strategy, config, weights, optimizer_name):
  with strategy.scope():
    model = model_lib.avc_network(config, SMALL_IMAGE, SMALL_AUDIO)
    model.set_weights(weights)
    optimizer = (keras.optimizers.SGD(SGD_RATE) if optimizer_name == "sgd"
                 else keras.optimizers.Adam(1e-3))
    optimizer.build(model.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64)
  return model, optimizer, step


def run(strategy, config, weights, data, optimizer_name="adam"):
  """Trains on `data` (global batches); returns (model, losses, path): path
  is the sum of the steps' norms over all trainable weights."""
  model, optimizer, step = build(strategy, config, weights, optimizer_name)
  train_step = step_lib.make_train_step(model, optimizer, strategy, GLOBAL, step)
  losses, path = [], 0.0
  before = [np.asarray(w) for w in model.trainable_weights]
  for features, labels in data:
    if strategy.num_replicas_in_sync > 1:
      # Replica r gets pairs [16 r, 16 (r + 1)) of the global batch.
      def slice_for(context, x):
        r = context.replica_id_in_sync_group
        return x[r * PER_REPLICA:(r + 1) * PER_REPLICA]
      features, labels = strategy.experimental_distribute_values_from_function(
          lambda context, f=features, l=labels: tf.nest.map_structure(
              lambda x: slice_for(context, x), (f, l)))
    losses.append(float(train_step(features, labels)["loss"]))
    after = [np.asarray(w) for w in model.trainable_weights]
    path += distance(after, before)
    before = after
  assert int(step.numpy()) == len(data)
  return model, losses, path


def distance(a, b) -> float:
  """Euclidean distance over all arrays, in float64."""
  return float(np.sqrt(sum(np.sum((np.asarray(x, np.float64) - y) ** 2)
                           for x, y in zip(a, b))))


def max_difference(a, b) -> float:
  return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


def moving_statistics(model) -> list[np.ndarray]:
  """Moving means and variances of every BN layer, towers in order."""
  values = []
  for tower in model_lib.towers_of(model)[:2]:
    for layer in tower.layers:
      if isinstance(layer, keras.layers.BatchNormalization):
        values += [np.asarray(layer.moving_mean), np.asarray(layer.moving_variance)]
  assert values, "no BatchNormalization layer found"
  return values


def initial_weights(config):
  keras.utils.set_random_seed(0)
  return model_lib.avc_network(config, SMALL_IMAGE, SMALL_AUDIO).get_weights()


def check_equivalence(mirrored) -> dict:
  config = model_lib.ModelConfig(width_multiplier=1 / 32, use_batch_norm=False)
  weights = initial_weights(config)
  data = batches(3)
  single, losses_single, path = run(tf.distribute.get_strategy(), config,
                                    weights, data, "sgd")
  replicated, losses_mirrored, _ = run(mirrored, config, weights, data, "sgd")
  return {
      "check": "equivalence", "replicas": mirrored.num_replicas_in_sync,
      "steps": len(data), "global_batch": GLOBAL, "optimizer": "sgd",
      "weight_distance": distance(single.trainable_weights,
                                  replicated.trainable_weights),
      "path_length": path,
      "weight_change": distance(single.trainable_weights,
                                [w for w, v in zip(weights, single.weights)
                                 if v.trainable]),
      "step_bound": compiled_check.compiled_step_bound(single, GLOBAL),
      "losses_single": losses_single, "losses_mirrored": losses_mirrored,
  }


def check_batch_norm(mirrored) -> dict:
  result = {"check": "batch_norm", "replicas": mirrored.num_replicas_in_sync}
  data = batches(1)
  reference = None
  for mode in ("synchronized", "per_replica"):
    config = model_lib.ModelConfig(width_multiplier=1 / 32,
                                   batch_norm_momentum=0.0, batch_norm=mode)
    weights = initial_weights(config)
    if reference is None:
      single, _, _ = run(tf.distribute.get_strategy(), config, weights, data)
      reference = (moving_statistics(single), single.trainable_weights)
      result["step_bound"] = compiled_check.compiled_step_bound(single, GLOBAL)
      scale = max(float(np.abs(v).max()) for v in reference[0])
      # How far one step moved the statistics from their start (mean 0,
      # variance 1): a difference must be judged against this.
      result["single_change"] = max(
          max(float(np.abs(m).max()) for m in reference[0][0::2]),
          max(float(np.abs(v - 1).max()) for v in reference[0][1::2]))
    replicated, _, _ = run(mirrored, config, weights, data)
    means = moving_statistics(replicated)
    result[mode] = {
        "max_statistics_difference": max_difference(reference[0], means),
        "relative": max_difference(reference[0], means) / scale,
        "max_mean_difference": max_difference(reference[0][0::2], means[0::2]),
        "max_variance_difference": max_difference(reference[0][1::2],
                                                  means[1::2]),
        "max_weight_difference": max_difference(
            [np.asarray(w) for w in reference[1]],
            [np.asarray(w) for w in replicated.trainable_weights]),
    }
  return result


def main(checks):
  distribute.split_cpu(REPLICAS)
  mirrored = distribute.make_strategy(
      tuple(f"/cpu:{i}" for i in range(REPLICAS)))
  assert isinstance(mirrored, tf.distribute.MirroredStrategy), mirrored
  for check in checks:
    print(json.dumps({"equivalence": check_equivalence,
                      "batch_norm": check_batch_norm}[check](mirrored)),
          flush=True)


if __name__ == "__main__":
  main(sys.argv[1:] or ["equivalence", "batch_norm"])
