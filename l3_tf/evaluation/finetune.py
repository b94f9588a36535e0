"""Fine-tuning the audio tower plus a linear classifier (sound transfer).

The alternative to the paper's linear SVM on frozen features
(`l3_tf.evaluation.audio_transfer`): the same sub-clips (1-second windows every
`hop_seconds`), the same official folds and rounds, the same clip decision
(mean of the sub-clip scores, `transfer.mean_per_clip`), but the audio tower
is trained too, from the given weights, with a linear layer on its
`embedding_6144` tap:

  waveform [b, 48000] -> log_spectrogram [b, 257, 199, 1] -> audio tower
  -> embedding_6144 [b, 12 * W4] -> z-score (as the SVM protocol: the
  training windows' statistics) -> Dense(num_classes) logits

Each round starts from the same source weights and sees only its training
folds' windows (tested like the SVM protocol's fold discipline). With
`freeze_batch_norm` the tower's BN layers keep their moving statistics and
affine parameters (Keras: a non-trainable BN runs in inference mode), the
usual choice with small batches.

Each round trains through the AVC networks' loop (`train.train`, one
device, float32, a constant learning rate): SIGTERM stops it with
`train.TrainingInterrupted`, a non-finite loss or gradient skips the step
(`train.TrainingDiverged` after `train.max_bad_steps` in a row), and the
weights are checked finite before they are used. A round's checkpoints and
summaries go to a scratch workdir removed after the round (a killed run
starts its rounds again).
"""

import dataclasses
import math
import tempfile
import time
from typing import Any

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from l3_tf.data import audio_frontend
from l3_tf.evaluation import audio_transfer
from l3_tf.evaluation import transfer
from l3_tf.evaluation import transfer_features
from l3_tf.model import finite
from l3_tf.model import networks as model_lib
from l3_tf.training import config as config_lib
from l3_tf.training import plan as plan_lib
from l3_tf.training import step as step_lib
from l3_tf.training import task as task_lib
from l3_tf.training import train as train_lib

AUDIO_SCALE = 32768.0  # windows are held as int16: a quarter of the memory


@dataclasses.dataclass(frozen=True)
class FinetuneSettings:
  """Fine-tuning hyperparameters (flags of `--mode=finetune`).

  Attributes:
    learning_rate: Adam learning rate of the tower and the classifier.
    epochs: passes over each round's training windows.
    batch_size: windows per step.
    freeze_batch_norm: keep BN statistics and affine parameters fixed.
    seed: shuffling and classifier initialisation.
  """

  learning_rate: float = 1e-4
  epochs: int = 5
  batch_size: int = 32
  freeze_batch_norm: bool = True
  seed: int = 0

  def __post_init__(self):
    for name in ("learning_rate", "epochs", "batch_size"):
      if not getattr(self, name) > 0:
        raise ValueError(f"{name}={getattr(self, name)} must be > 0")


def dataset_windows(builder, spec: audio_transfer.AudioDataset,
                    audio_params, hop_seconds: float,
                    max_clips_per_split: int | None = None,
                    folds: list[int] | None = None
                    ) -> tuple[np.ndarray, transfer.SubclipFeatures]:
  """Every clip's sub-clip windows and the dataset's clip structure.

  Returns:
    (int16 `[num_subclips, 48000]` windows, `SubclipFeatures` whose
    `features[:, 0]` is each sub-clip's row in the windows; folds and
    source recordings as `audio_transfer.dataset_features`).
  """
  windows, clip_index, labels, fold_ids, ids, groups = [], [], [], [], [], []
  pairs, _ = audio_transfer.fold_splits(builder, spec, folds)
  for fold, split in pairs:
    for clip in transfer_features.read_clips(builder, split, max_clips_per_split,
                                          spec.group_feature):
      # The SVM protocol's sub-clips (whole windows; a short clip centred).
      clip_windows = transfer_features.subclip_windows(
          clip["waveform"], hop_seconds, audio_params)  # [T, 48000]
      windows.append(np.round(clip_windows * AUDIO_SCALE).clip(
          -32768, 32767).astype(np.int16))
      clip_index.append(np.full(len(clip_windows), len(labels), np.int64))
      labels.append(clip["label"])
      fold_ids.append(fold)
      ids.append(clip["clip_id"])
      groups.append(clip["group"])
  windows = np.concatenate(windows)  # [n, 48000]
  data = transfer.SubclipFeatures(
      features=np.arange(len(windows))[:, None],
      clip_index=np.concatenate(clip_index),
      clip_labels=np.asarray(labels, np.int64),
      clip_folds=np.asarray(fold_ids, np.int64),
      clip_ids=np.asarray(ids),
      class_names=list(builder.info.features["label"].names),
      clip_groups=(np.asarray(groups, np.int64) if spec.group_feature
                   else None))
  return windows, data


def classifier(avc: keras.Model, num_classes: int,
               settings: FinetuneSettings) -> keras.Model:
  """A fresh copy of `avc`'s audio tower + a linear classifier on its 6144
  tap (standardised, then one Dense layer)."""
  _, source, _ = model_lib.towers_of(avc)
  tower = keras.models.clone_model(source)
  tower.set_weights(source.get_weights())
  if settings.freeze_batch_norm:
    for layer in tower.layers:
      if isinstance(layer, keras.layers.BatchNormalization):
        layer.trainable = False
  spectrogram = keras.Input(source.input.shape[1:], name="spectrogram")
  tap = tower(spectrogram)[transfer_features.EMBEDDING]  # [b, 12 * W4]
  # Z-scores the tap as the SVM protocol does; `train_round` adapts it to
  # the training windows' features of the source tower. An affine map, so
  # the classifier stays linear in the features.
  standardised = keras.layers.Normalization(name="classifier_zscore")(tap)
  logits = keras.layers.Dense(
      num_classes, kernel_initializer=keras.initializers.GlorotUniform(
          settings.seed), name="classifier")(standardised)  # [b, classes]
  return keras.Model(spectrogram, logits, name="finetuned_audio")


def _batches(windows: tf.Tensor, rows: np.ndarray, labels: np.ndarray | None,
             params, batch_size: int, seed: int | None) -> tf.data.Dataset:
  """(spectrogram, label) batches of the given window rows, in graph."""
  data = tf.data.Dataset.from_tensor_slices(
      (rows, labels if labels is not None else np.zeros_like(rows)))
  if seed is not None:
    data = data.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)

  def load(row, label):
    waveform = tf.cast(tf.gather(windows, row), tf.float32) / AUDIO_SCALE
    return audio_frontend.log_spectrogram(waveform, params), label

  return data.batch(batch_size).map(load, num_parallel_calls=tf.data.AUTOTUNE
                                    ).prefetch(tf.data.AUTOTUNE)


def _finetune_loss(logits, labels, global_batch_size):
  # The batch's own size: an epoch's last batch is smaller.
  del global_batch_size
  loss, accuracy = step_lib.classification(logits, labels,
                                           tf.shape(labels)[0])
  return loss, {"accuracy": accuracy}


FINETUNE_OBJECTIVE = step_lib.Objective(_finetune_loss, ("accuracy",))


def round_training_config(config: config_lib.Config,
                          settings: FinetuneSettings,
                          num_windows: int) -> config_lib.Config:
  """The source config with one round's schedule in its `train` section:
  `settings.epochs` passes over `num_windows` training windows, logged once
  per epoch, on one device in float32 at a constant learning rate."""
  steps_per_epoch = math.ceil(num_windows / settings.batch_size)
  num_steps = settings.epochs * steps_per_epoch
  return task_lib.plain_schedule(
      config, "finetune", batch_size=settings.batch_size,
      learning_rate=settings.learning_rate, num_steps=num_steps,
      log_every_steps=steps_per_epoch, checkpoint_every_steps=num_steps,
      keep_checkpoints=1, seed=settings.seed, precision="float32",
      mixed_precision=False, devices="", cpu_replicas=0)


def train_round(avc: keras.Model, windows: tf.Tensor,
                train: transfer.SubclipFeatures, config: config_lib.Config,
                settings: FinetuneSettings) -> tuple[keras.Model, list[float]]:
  """Fine-tunes a fresh classifier on one round's training sub-clips only,
  through `train.train` (module docstring).

  Returns:
    (the model, the mean training loss of each epoch).
  """
  rows = train.features[:, 0]
  labels = train.clip_labels[train.clip_index].astype(np.int32)  # [n_train_sub]
  run_config = round_training_config(config, settings, len(rows))

  built = {}  # the model `train.train` trains, returned below

  def build_model():
    model = classifier(avc, len(train.class_names), settings)
    built["model"] = model
    zscore = model.get_layer("classifier_zscore")
    taps = keras.Model(model.input, zscore.input)  # the tower's tap
    zscore.adapt(taps.predict(
        _batches(windows, rows, None, config.audio, settings.batch_size,
                 None).map(lambda x, _: x), verbose=0))  # [n_train_sub, D]
    return model

  def plan(run, num_replicas, num_workers):
    del num_workers
    if num_replicas != 1:
      raise ValueError(f"fine-tuning runs on one device, not {num_replicas}")
    batch = run.train.batch_size_per_replica
    return plan_lib.Plan(batch, batch, 1, 1, train_videos=len(rows),
                         eval_videos=0, builder=None)

  def dataset(run, batch, context, seed, builder):
    del context, builder
    # Reshuffled every epoch (seeded); the last batch of an epoch is smaller.
    return _batches(windows, rows, labels, run.audio, batch, seed).repeat()

  task = task_lib.Task(
      name="fine-tuning", build_model=build_model,
      objective=FINETUNE_OBJECTIVE, dataset=dataset, plan=plan,
      write_workdir=lambda workdir: None,
      check_model=finite.check_classifier,
      input_description=f"{len(rows)} training windows in memory, "
      f"{settings.epochs} epoch(s)")
  with tempfile.TemporaryDirectory(prefix="l3_finetune_") as workdir:
    result = train_lib.train(task, run_config, workdir,
                             tf.distribute.get_strategy())
  return built["model"], [entry["loss"] for entry in result["history"]]


def clip_scores(model: keras.Model, windows: tf.Tensor,
                test: transfer.SubclipFeatures, config: config_lib.Config,
                batch_size: int) -> np.ndarray:
  """`[num_test_clips, classes]` mean sub-clip logits."""
  logits = model.predict(
      _batches(windows, test.features[:, 0], None, config.audio, batch_size,
               None).map(lambda x, _: x), verbose=0)  # [n_sub, classes]
  return transfer.mean_per_clip(logits, test.clip_index,
                                len(test.clip_labels))


def cross_validate(avc: keras.Model, config: config_lib.Config,
                   windows: np.ndarray, data: transfer.SubclipFeatures,
                   settings: FinetuneSettings = FinetuneSettings(),
                   test_folds=None) -> dict[str, Any]:
  """Fine-tunes and tests once per round of the official folds.

  Args:
    avc: the source `avc_network` (its audio tower is copied each round).
    config: its config.
    windows: `dataset_windows`' int16 windows.
    data: `dataset_windows`' clip structure.
    settings: hyperparameters.
    test_folds: as `transfer.cross_validate` (default each fold once).

  Returns:
    JSON-ready: mean_accuracy, fold_accuracies, std, rounds (test folds,
    accuracy, per-epoch training loss, seconds), confusion_matrix,
    class_names, settings.
  """
  windows = tf.constant(windows)  # [n, 48000] int16, shared by the rounds
  num_classes = len(data.class_names)
  confusion = np.zeros((num_classes, num_classes), np.int64)
  rounds = []
  for held_out, train, test in transfer.fold_rounds(data, test_folds):
    started = time.perf_counter()
    model, losses = train_round(avc, windows, train, config, settings)
    predicted = clip_scores(model, windows, test, config,
                            settings.batch_size).argmax(axis=1)
    np.add.at(confusion, (test.clip_labels, predicted), 1)
    rounds.append({
        "test_folds": [int(f) for f in held_out],
        "accuracy": float(np.mean(predicted == test.clip_labels)),
        "num_test_clips": int(len(test.clip_labels)),
        "num_train_subclips": int(len(train.features)),
        "epoch_losses": losses,
        "seconds": time.perf_counter() - started,
    })
    logging.info("fine-tune round %s: accuracy %.3f (losses %s)", held_out,
                 rounds[-1]["accuracy"], losses)
  return transfer.summarize_rounds(rounds, confusion, data.class_names,
                                   settings)
