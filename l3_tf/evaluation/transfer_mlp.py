"""OpenL3's downstream classifier: a small MLP on frozen sub-clip features.

The alternative to the paper's linear SVM (`transfer`) that the OpenL3 paper
(Cramer, Wu, Salamon, Bello, "Look, Listen and Learn More", ICASSP 2019)
trains on its embeddings for UrbanSound8K, ESC-50 and DCASE 2013, as its
code has it (marl/l3embedding: `classifier/train.py` `construct_mlp_model`,
`train_mlp`, `train_param_search`; `data/usc/folds.py`;
`data/usc/features.py`):

  features [n, D] -> z-score (statistics of the training windows)
  -> Dense(512, relu) -> Dense(128, relu) -> Dense(classes, softmax),
  an L2 penalty (the weight decay) on every kernel

  * every window carries its clip's label; categorical cross-entropy, Adam,
    batches of 64;
  * at most `max_epochs` epochs, stopped when the validation loss has not
    improved for `patience` epochs; the weights of the best validation loss
    are the model (their checkpoint of the lowest `val_loss`, reloaded);
  * learning rate x weight decay chosen on the validation set by its window
    accuracy (their grid: {1e-5, 1e-4, 1e-3} x {1e-5, 1e-4, 1e-3}); the
    chosen model is the one trained during the search (their default: not
    retrained on training + validation);
  * the validation set is the fold before the test fold (their
    `get_valid_fold_idx`: fold k tests, fold k-1 validates, fold 10 for
    fold 1), so a round trains on the other folds; training clips without
    folds (DCASE's train split) give a class-stratified `validation_fraction`
    of their clips (they drew 15 % of the windows; we draw whole clips, so
    windows of one clip are never on both sides);
  * a clip's prediction is the mean of its windows' class probabilities,
    argmax (their test).

Seeded: the kernels' initialisers and the order of each epoch derive from
`MlpSettings.seed`, so a rerun gives the same classifier (on the same
machine and TensorFlow build).
"""

import dataclasses
import itertools
import time
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

from l3_tf.evaluation import transfer


@dataclasses.dataclass(frozen=True)
class MlpSettings:
  """The MLP and its schedule (experiments/configs/mlp_<name>.py).

  Attributes:
    name: the config's name, for the results.
    hidden_units: widths of the hidden ReLU layers.
    learning_rates: Adam learning rates searched on the validation set.
    weight_decays: L2 factors (on every kernel) searched with them.
    batch_size: windows per step.
    max_epochs: the most passes over the training windows.
    patience: epochs without a lower validation loss before stopping.
    validation_fraction: share of the training clips held out for
      validation when they carry no folds.
    seed: initialisation and shuffling.
  """

  name: str = "openl3"
  hidden_units: tuple[int, ...] = (512, 128)
  learning_rates: tuple[float, ...] = (1e-5, 1e-4, 1e-3)
  weight_decays: tuple[float, ...] = (1e-5, 1e-4, 1e-3)
  batch_size: int = 64
  max_epochs: int = 150
  patience: int = 20
  validation_fraction: float = 0.15
  seed: int = 0

  def __post_init__(self):
    for name in ("batch_size", "max_epochs", "patience"):
      if not getattr(self, name) > 0:
        raise ValueError(f"{name}={getattr(self, name)} must be > 0")
    if not self.hidden_units or min(self.hidden_units) < 1:
      raise ValueError(f"hidden_units={self.hidden_units}: expected "
                       "positive widths")
    if (not self.learning_rates or min(self.learning_rates) <= 0 or
        not self.weight_decays or min(self.weight_decays) < 0):
      raise ValueError(f"learning_rates={self.learning_rates}, weight_decays="
                       f"{self.weight_decays}: expected positive rates and "
                       "non-negative decays")
    if not 0 < self.validation_fraction < 1:
      raise ValueError(f"validation_fraction={self.validation_fraction}: "
                       "expected a fraction in (0, 1)")

  def fit(self, train: transfer.SubclipFeatures,
          held_out: Sequence[int]) -> "MlpClassifier":
    """`transfer.cross_validate`'s classifier for one round."""
    return fit_classifier(train, held_out, self)


@dataclasses.dataclass
class MlpClassifier:
  """A trained MLP with its z-scoring and how it was chosen."""

  model: keras.Model
  mean: np.ndarray  # [dim]
  scale: np.ndarray  # [dim]
  learning_rate: float
  weight_decay: float
  validation: dict[str, Any]

  def window_probabilities(self, features: np.ndarray) -> np.ndarray:
    z = ((features - self.mean) / self.scale).astype(np.float32)  # [n, dim]
    return np.concatenate([
        np.asarray(self.model(z[start:start + 8192], training=False))
        for start in range(0, len(z), 8192)])  # [n, classes]

  def clip_scores(self, test: transfer.SubclipFeatures) -> np.ndarray:
    """`[num_test_clips, classes]` mean window probabilities."""
    return transfer.mean_per_clip(self.window_probabilities(test.features),
                                  test.clip_index, len(test.clip_labels))

  def summary(self) -> dict[str, Any]:
    return {"chosen_learning_rate": self.learning_rate,
            "chosen_weight_decay": self.weight_decay, **self.validation}


def build_model(dim: int, num_classes: int,
                settings: MlpSettings) -> keras.Model:
  """OpenL3's classifier: [b, dim] -> hidden ReLU layers -> softmax.

  The weight decay (an L2 penalty on every kernel, as OpenL3's Keras
  `kernel_regularizer`) is added to the loss by the trainer, so that one
  compiled training step serves every decay of the search.
  """
  inputs = keras.Input((dim,), name="features")
  x = inputs
  layers = list(settings.hidden_units) + [num_classes]
  for i, units in enumerate(layers):
    last = i == len(layers) - 1
    x = keras.layers.Dense(
        units, activation="softmax" if last else "relu",
        kernel_initializer=keras.initializers.GlorotUniform(settings.seed + i),
        name="probabilities" if last else f"hidden{i + 1}")(x)  # [b, units]
  return keras.Model(inputs, x, name="openl3_mlp")


def validation_clips(train: transfer.SubclipFeatures, held_out: Sequence[int],
                     settings: MlpSettings) -> tuple[np.ndarray, str]:
  """Indices of the training clips that validate, and how they were chosen.

  The fold before the (first) test fold, cyclically over the dataset's
  folds, when the training clips carry at least two folds; otherwise a
  seeded, class-stratified fraction of the clips.
  """
  if len(np.unique(train.clip_folds)) >= 2:
    fold = transfer.fold_before(train.clip_folds, held_out)
    return np.flatnonzero(train.clip_folds == fold), f"fold {fold}"
  rng = np.random.default_rng(settings.seed)
  chosen = []
  for label in np.unique(train.clip_labels):
    clips = rng.permutation(np.flatnonzero(train.clip_labels == label))
    count = max(1, int(round(settings.validation_fraction * clips.size)))
    if count < clips.size:
      chosen.extend(clips[:count].tolist())
  if not chosen:
    raise ValueError(f"{len(train.clip_labels)} training clips cannot spare "
                     "one per class for validation")
  return (np.array(sorted(chosen)),
          f"{settings.validation_fraction:g} of the training clips per class")


class _Trainer:
  """One model, optimizer and compiled epoch / evaluation for every round
  and grid point of a protocol (each starts from fresh seeded weights and a
  fresh Adam state): tracing them anew for each would cost more than the
  training of these small models on 2 cores.

  The loop is a `tf.function` over an epoch's batches (seeded NumPy
  permutations, gathered in graph): Keras `fit` spent ~0.7 s per epoch in
  its `tf.data` and callback machinery here, 50x the step time. The loss is
  what Keras minimises for OpenL3's model (cross-entropy plus
  `weight_decay * sum(kernel ** 2)` over the kernels), and the early
  stopping rule is Keras `EarlyStopping`'s (`min_delta=0`, best weights
  restored).
  """

  def __init__(self, dim: int, num_classes: int, settings: MlpSettings):
    self.key = (dim, num_classes, settings.hidden_units, settings.seed)
    self.model = build_model(dim, num_classes, settings)
    self.optimizer = keras.optimizers.Adam(1e-3)
    self.optimizer.build(self.model.trainable_variables)
    self.weight_decay = tf.Variable(0.0, trainable=False)
    self.cross_entropy = keras.losses.SparseCategoricalCrossentropy()

  def reset(self, settings: MlpSettings, learning_rate: float,
            weight_decay: float) -> None:
    """Fresh seeded weights (those of `build_model`), a fresh Adam."""
    fresh = build_model(self.key[0], self.key[1], settings)
    self.model.set_weights(fresh.get_weights())
    for variable in self.optimizer.variables:
      if "learning_rate" in variable.path:
        variable.assign(learning_rate)
      else:  # iterations, first and second moments
        variable.assign(tf.zeros_like(variable))
    self.weight_decay.assign(weight_decay)

  def _loss(self, z, labels, training):
    probabilities = self.model(z, training=training)  # [b, classes]
    penalty = tf.add_n([tf.reduce_sum(tf.square(layer.kernel))
                        for layer in self.model.layers
                        if isinstance(layer, keras.layers.Dense)])
    loss = (self.cross_entropy(labels, probabilities) +
            self.weight_decay * penalty)
    return loss, probabilities

  @tf.function(reduce_retracing=True)
  def epoch(self, z, labels, order, batch_size):
    """One pass in `order` ([n] int32); z [n, dim], labels [n]."""
    for start in tf.range(0, tf.size(order), batch_size):
      rows = order[start:start + batch_size]  # [b]
      with tf.GradientTape() as tape:
        loss, _ = self._loss(tf.gather(z, rows), tf.gather(labels, rows),
                             True)
      variables = self.model.trainable_variables
      self.optimizer.apply_gradients(zip(tape.gradient(loss, variables),
                                         variables))

  @tf.function(reduce_retracing=True)
  def evaluate(self, z, labels):
    """(loss, window accuracy) on z [n, dim], labels [n]."""
    loss, probabilities = self._loss(z, labels, False)
    hits = tf.equal(tf.argmax(probabilities, axis=1, output_type=labels.dtype),
                    labels)
    return loss, tf.reduce_mean(tf.cast(hits, tf.float32))

  def train(self, z, labels, z_valid, labels_valid,
            settings: MlpSettings) -> dict[str, Any]:
    """Trains with early stopping; the model keeps its best weights."""
    rng = np.random.default_rng(settings.seed)
    best_loss, best_epoch, best_weights, accuracy = np.inf, 0, None, 0.0
    epochs_run = 0
    batch_size = tf.constant(settings.batch_size)
    for epoch in range(settings.max_epochs):
      order = rng.permutation(int(z.shape[0])).astype(np.int32)  # [n]
      self.epoch(z, labels, tf.constant(order), batch_size)
      loss, window_accuracy = (float(v) for v in self.evaluate(z_valid,
                                                               labels_valid))
      epochs_run = epoch + 1
      if not np.isfinite(loss):
        raise FloatingPointError(f"validation loss {loss} at epoch "
                                 f"{epochs_run}: the MLP diverged")
      if loss < best_loss:
        best_loss, best_epoch, accuracy = loss, epochs_run, window_accuracy
        best_weights = self.model.get_weights()
      elif epochs_run - best_epoch >= settings.patience:
        break
    self.model.set_weights(best_weights)
    return {"window_accuracy": accuracy, "validation_loss": best_loss,
            "best_epoch": best_epoch, "epochs_run": epochs_run}


_TRAINERS: dict[tuple, _Trainer] = {}  # the last one: its traces are reused


def _trainer(dim: int, num_classes: int, settings: MlpSettings) -> _Trainer:
  key = (dim, num_classes, settings.hidden_units, settings.seed)
  if key not in _TRAINERS:
    _TRAINERS.clear()
    _TRAINERS[key] = _Trainer(dim, num_classes, settings)
  return _TRAINERS[key]


def fit_classifier(train: transfer.SubclipFeatures, held_out: Sequence[int],
                   settings: MlpSettings = MlpSettings()) -> MlpClassifier:
  """Trains the MLP on one round's training clips only (see the module
  docstring for the schedule and the choice of the hyperparameters)."""
  transfer.check_finite_features(train)
  started = time.perf_counter()
  valid, valid_from = validation_clips(train, held_out, settings)
  rest = np.setdiff1d(np.arange(len(train.clip_labels)), valid)
  fit_part, valid_part = train.select_clips(rest), train.select_clips(valid)
  mean = fit_part.features.mean(axis=0)  # [dim]
  scale = fit_part.features.std(axis=0)
  scale = np.where(scale > 0, scale, 1.0)  # as StandardScaler: constant -> 1

  def windows(part):
    z = ((part.features - mean) / scale).astype(np.float32)  # [n, dim]
    return tf.constant(z), tf.constant(part.clip_labels[part.clip_index])

  z, labels = windows(fit_part)
  z_valid, labels_valid = windows(valid_part)
  dim, num_classes = train.features.shape[1], len(train.class_names)
  trainer = _trainer(dim, num_classes, settings)
  best, searched = None, {}
  for rate, decay in itertools.product(settings.learning_rates,
                                       settings.weight_decays):
    trainer.reset(settings, rate, decay)
    outcome = trainer.train(z, labels, z_valid, labels_valid, settings)
    searched[f"lr={rate:g},wd={decay:g}"] = outcome
    # The best validation window accuracy; ties: the first in grid order.
    if best is None or outcome["window_accuracy"] > best[0]:
      best = (outcome["window_accuracy"], trainer.model.get_weights(), rate,
              decay)
  _, weights, rate, decay = best
  model = build_model(dim, num_classes, settings)  # the classifier's own
  model.set_weights(weights)
  return MlpClassifier(
      model=model, mean=mean, scale=scale, learning_rate=rate,
      weight_decay=decay,
      validation={"validation": valid_from,
                  "num_validation_clips": int(valid.size),
                  "search": searched,
                  "fit_seconds": time.perf_counter() - started})
