"""One training step on 1 device vs. MirroredStrategy over 2 logical CPUs.

Run in a fresh process (logical devices must be set before TensorFlow starts):

  python tests/mirrored_equivalence.py [--jit_compile]

Builds a BN-free 1/32-width AVC network, takes one step of
`l3_tf.training.step.make_train_step` with the same global batch of 8 pairs on one
device and on 2 replicas x 4 pairs, and prints one JSON line per optimizer
(SGD: sensitive to how the loss is scaled; Adam: the one training uses)
with the distance between the two runs' weights and the single run's
change (normwise, float64), Adam's first moments (its gradient, before the
division by sqrt(v)) likewise, both losses, and the float round-off bound
of one step (`compiled_check.compiled_step_bound`) the tests hold them to.
With --jit_compile, only Adam, and the mirrored step is compiled with XLA
(`train.jit_compile`) while the single-device one is not.
"""

import json
import sys

import keras
import numpy as np
import tensorflow as tf

from l3_tf.model import networks as model_lib
from l3_tf.training import compiled_check
from l3_tf.training import distribute
from l3_tf.training import step as step_lib


def build(strategy, config, weights, optimizer_name):
  with strategy.scope():
    model = model_lib.avc_network(config)
    model.set_weights(weights)
    optimizer = (keras.optimizers.SGD(0.5) if optimizer_name == "sgd"
                 else keras.optimizers.Adam(1e-3))
    optimizer.build(model.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64)
  return model, optimizer, step


def distance(a, b) -> float:
  """Euclidean distance over all arrays, in float64."""
  return float(np.sqrt(sum(np.sum((np.asarray(x, np.float64) - y) ** 2)
                           for x, y in zip(a, b))))


def first_moments(optimizer) -> list[np.ndarray]:
  """Adam's first-moment slots (empty for SGD)."""
  return [np.asarray(v) for v in optimizer.variables
          if v.path.endswith("_momentum")]


def compare(optimizer_name: str, mirrored, jit_compile: bool = False):
  # A large weight decay makes its share per replica visible in the result.
  config = model_lib.ModelConfig(width_multiplier=1 / 32, use_batch_norm=False,
                                 weight_decay=1e-2)
  keras.utils.set_random_seed(0)
  initial = model_lib.avc_network(config).get_weights()
  rng = np.random.default_rng(0)
  batch = 8
  features = {
      "image": rng.uniform(-1, 1, (batch, 224, 224, 3)).astype(np.float32),
      "spectrogram": rng.normal(0, 1, (batch, 257, 199, 1)).astype(np.float32),
  }
  labels = (np.arange(batch) % 2).astype(np.int32)

  single = tf.distribute.get_strategy()
  model, optimizer, step = build(single, config, initial, optimizer_name)
  metrics_single = step_lib.make_train_step(
      model, optimizer, single, batch, step)(features, labels)
  single_weights = model.get_weights()

  model_m, optimizer_m, step_m = build(mirrored, config, initial,
                                       optimizer_name)

  def dataset_fn(context):
    per_replica = context.get_per_replica_batch_size(batch)
    halves = [({k: v[i * per_replica:(i + 1) * per_replica]
                for k, v in features.items()},
               labels[i * per_replica:(i + 1) * per_replica])
              for i in range(2)]
    # Consecutive elements go to consecutive replicas.
    return tf.data.Dataset.from_tensor_slices(
        tf.nest.map_structure(lambda *x: np.stack(x), *halves))

  distributed = iter(mirrored.distribute_datasets_from_function(dataset_fn))
  features_m, labels_m = next(distributed)
  per_replica_labels = [t.numpy().tolist() for t in
                        mirrored.experimental_local_results(labels_m)]
  metrics_m = step_lib.make_train_step(model_m, optimizer_m, mirrored, batch,
                                    step_m, jit_compile=jit_compile)(
                                        features_m, labels_m)
  mirrored_weights = model_m.get_weights()
  moments, moments_m = first_moments(optimizer), first_moments(optimizer_m)
  print(json.dumps({
      "optimizer": optimizer_name,
      "jit_compile": jit_compile,
      "replicas": mirrored.num_replicas_in_sync,
      "per_replica_labels": per_replica_labels,
      "max_weight_difference": max(float(np.abs(a - b).max()) for a, b in
                                   zip(single_weights, mirrored_weights)),
      "max_weight_change": max(float(np.abs(a - b).max()) for a, b in
                               zip(single_weights, initial)),
      "weight_distance": distance(mirrored_weights, single_weights),
      "weight_change": distance(single_weights, initial),
      "moment_distance": distance(moments_m, moments) if moments else None,
      "moment_norm": distance(moments, [0 * m for m in moments])
                     if moments else None,
      "step_bound": compiled_check.compiled_step_bound(model, batch),
      "loss_single": float(metrics_single["loss"]),
      "loss_mirrored": float(metrics_m["loss"]),
      "regularization_single": float(metrics_single["regularization"]),
      "regularization_mirrored": float(metrics_m["regularization"]),
      "steps": [int(step.numpy()), int(step_m.numpy())],
  }))


def main():
  distribute.split_cpu(2)
  mirrored = distribute.make_strategy(("/cpu:0", "/cpu:1"))
  assert isinstance(mirrored, tf.distribute.MirroredStrategy), mirrored
  if "--jit_compile" in sys.argv[1:]:
    compare("adam", mirrored, jit_compile=True)
    return
  for optimizer_name in ("sgd", "adam"):
    compare(optimizer_name, mirrored)


if __name__ == "__main__":
  main()
