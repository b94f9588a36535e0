"""The supervised baselines of the AVC table (PAPER.md §5).

On a labelled audio-visual dataset (Kinetics-Sounds in the paper):

* **Classifiers**: a vision network and an audio network, each the L3 trunk
  (`model.vision_tower` / `model.audio_tower`, pool4 512-d) topped by
  fc 512 -> 128 (ReLU) -> K, trained with cross-entropy on the class labels
  of the training split, by the AVC networks' loop (`train.train`, with
  `classifiers_task`). Both are trained together on the same batches
  (a frame and the 1-second window around it, with its video's label, from
  `input_pipeline.train_dataset(labelled=True)`, same augmentation as L3);
  their parameters and losses are disjoint, so this is the same as training
  them one after the other on the same data.
* **Direct combination**: score = <softmax_vision(frame), softmax_audio(sound)>
  (the probability that both name the same class); "corresponds" when the
  score exceeds a threshold chosen to maximise AVC accuracy on the
  validation split's fixed pairs.
* **Supervised pretraining**: both trained trunks, frozen (weights fixed, BN
  in inference mode), with the L3 fusion head on top; only the head is
  trained on AVC, by `train.train_and_evaluate` (the same pipeline, loop,
  strategy handling and evaluation as L3-Net).

Every AVC figure comes from `evaluate.evaluate_model` on
`input_pipeline.eval_dataset`: the same fixed, balanced pairs for L3-Net and
both baselines when their configs share the `data` section (`avc_table`
takes it from the L3 workdir).

Classifier workdir layout:

  <workdir>/config.json             the L3 `Config` (data, model, front ends)
  <workdir>/baselines.json          the `BaselinesConfig`
  <workdir>/checkpoints/ckpt-N      classifiers, optimizer, step
  <workdir>/classifiers_<split>.json  top-1 accuracy of each classifier
"""

import dataclasses
import json
import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from l3_tf.data import input_pipeline
from l3_tf.model import finite
from l3_tf.model import networks as model_lib
from l3_tf.training import config as config_lib
from l3_tf.training import distribute
from l3_tf.training import evaluate as evaluate_lib
from l3_tf.training import plan as plan_lib
from l3_tf.training import step as step_lib
from l3_tf.training import task as task_lib
from l3_tf.training import train as train_lib
from l3_tf.training import workdir as workdir_lib

BASELINES_FILENAME = "baselines.json"
DIRECT_COMBINATION = "Supervised direct combination"
SUPERVISED_PRETRAINING = "Supervised pretraining"
L3_NET = "L3-Net"
METHODS = (DIRECT_COMBINATION, SUPERVISED_PRETRAINING, L3_NET)


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
  """Training of the supervised vision and audio classifiers.

  Attributes:
    hidden_units: fc1 width (512 -> 128 -> K in the paper).
    batch_size_per_replica: labelled examples per replica per step.
    learning_rate: Adam learning rate (weight decay: `model.weight_decay`).
    num_steps: optimisation steps.
    checkpoint_every_steps: checkpoint period (and at the end).
    log_every_steps: logging / summary period.
    eval_num_examples: labelled examples of the evaluation split on which
      the classifiers' top-1 accuracy is reported.
    seed: initialisation and pipeline seed.
  """

  hidden_units: int = 128
  batch_size_per_replica: int = 16
  learning_rate: float = 1e-4
  num_steps: int = 30000
  checkpoint_every_steps: int = 1000
  log_every_steps: int = 100
  eval_num_examples: int = 2000
  seed: int = 0


@dataclasses.dataclass(frozen=True)
class BaselinesConfig:
  """Everything the baselines add to an L3 `Config`.

  Attributes:
    name: config name (experiments/configs/baselines_<name>.py).
    classifier: the classifiers' training.
    head_num_steps: supervised pretraining: AVC steps of the fusion head.
    head_learning_rate: its Adam learning rate.
    threshold_split: split whose fixed AVC pairs choose the direct
      combination's threshold (never the split it is tested on).
    threshold_num_pairs: pairs of that set (0: `data.eval_num_pairs`).
  """

  name: str = "paper"
  classifier: ClassifierConfig = ClassifierConfig()
  head_num_steps: int = 30000
  head_learning_rate: float = 1e-4
  threshold_split: str = "validation"
  threshold_num_pairs: int = 0


# -- models -----------------------------------------------------------------


def classifier_network(tower: keras.Model, num_classes: int,
                       config: ClassifierConfig,
                       model_config: model_lib.ModelConfig,
                       name: str) -> keras.Model:
  """tower input -> pool4 [b, W4] -> fc1 [b, 128] ReLU -> fc2 [b, K] logits."""
  regularizer = (keras.regularizers.L2(model_config.weight_decay)
                 if model_config.weight_decay else None)
  inputs = keras.Input(tower.input.shape[1:], name=tower.input.name)
  x = tower(inputs)["embedding_512"]  # [b, W4]
  x = keras.layers.Dense(config.hidden_units, activation="relu",
                         kernel_initializer=model_config.kernel_initializer,
                         kernel_regularizer=regularizer, name="fc1")(x)
  logits = keras.layers.Dense(num_classes, kernel_regularizer=regularizer,
                              dtype="float32", name="fc2")(x)  # [b, K]
  return keras.Model(inputs, logits, name=name)


def supervised_networks(config: config_lib.Config, num_classes: int,
                        classifier: ClassifierConfig) -> keras.Model:
  """Both classifiers as one model.

  Returns:
    `{"image": [b, 224, 224, 3], "spectrogram": [b, 257, 199, 1]}` ->
    `{"vision": [b, K], "audio": [b, K]}` float32 logits; the classifiers
    are the layers "vision_classifier" and "audio_classifier", their trunks
    "vision_tower" / "audio_tower" inside them (see `trunks_of`).
  """
  vision = classifier_network(
      model_lib.vision_tower(config.model, config.image), num_classes,
      classifier, config.model, "vision_classifier")
  audio = classifier_network(
      model_lib.audio_tower(config.model, config.audio), num_classes,
      classifier, config.model, "audio_classifier")
  image = keras.Input(vision.input.shape[1:], name="image")
  spectrogram = keras.Input(audio.input.shape[1:], name="spectrogram")
  return keras.Model({"image": image, "spectrogram": spectrogram},
                     {"vision": vision(image), "audio": audio(spectrogram)},
                     name="supervised_classifiers")


def trunks_of(classifiers: keras.Model) -> tuple[keras.Model, keras.Model]:
  """(vision_tower, audio_tower) of a `supervised_networks` model."""
  return (classifiers.get_layer("vision_classifier").get_layer("vision_tower"),
          classifiers.get_layer("audio_classifier").get_layer("audio_tower"))


def correspondence_score(classifiers: keras.Model, features) -> tf.Tensor:
  """[b] <softmax(vision logits), softmax(audio logits)>, in [0, 1].

  Keras ops: also builds the symbolic graph of `direct_combination_network`.
  """
  logits = classifiers(features, training=False)
  vision = keras.ops.softmax(keras.ops.cast(logits["vision"], "float32"))
  audio = keras.ops.softmax(keras.ops.cast(logits["audio"], "float32"))
  return keras.ops.sum(vision * audio, axis=1)  # [b]


def direct_combination_network(classifiers: keras.Model,
                               threshold: float) -> keras.Model:
  """The direct combination as an AVC network for `evaluate.evaluate_model`.

  Returns:
    `{"image", "spectrogram"}` -> float32 logits [b, 2] = [log t, log s]
    for score s and threshold t: argmax is "corresponds" exactly when
    s > t, and softmax index 1 is s / (s + t) (monotone in s; the reported
    loss is of that, not of a calibrated probability).
  """
  image = keras.Input(classifiers.input["image"].shape[1:], name="image")
  spectrogram = keras.Input(classifiers.input["spectrogram"].shape[1:],
                            name="spectrogram")
  inputs = {"image": image, "spectrogram": spectrogram}
  score = keras.ops.expand_dims(correspondence_score(classifiers, inputs),
                                1)  # [b, 1]
  tiny = 1e-30  # log(0) guard; scores and thresholds are >= 0
  logit_yes = keras.ops.log(score + tiny)
  logit_no = keras.ops.full_like(logit_yes, float(np.log(threshold + tiny)))
  output = keras.ops.concatenate([logit_no, logit_yes], axis=1)  # [b, 2]
  return keras.Model(inputs, output, name="direct_combination")


def choose_threshold(scores: np.ndarray, labels: np.ndarray
                     ) -> tuple[float, float]:
  """The threshold t maximising the accuracy of "corresponds iff s > t".

  Candidates are the midpoints between consecutive distinct scores and
  below / above all of them; ties go to the smallest t.

  Returns:
    (threshold, accuracy on these pairs).
  """
  scores = np.asarray(scores, np.float64)
  labels = np.asarray(labels)
  if scores.size == 0 or scores.shape != labels.shape:
    raise ValueError(f"scores {scores.shape} and labels {labels.shape}: "
                     "expected the same non-empty shape")
  distinct = np.unique(scores)
  candidates = np.concatenate([[distinct[0] / 2],
                               (distinct[:-1] + distinct[1:]) / 2,
                               [distinct[-1] + 1.0]])
  # Accuracy of every candidate at once: sort, count positives above.
  order = np.argsort(scores)
  sorted_scores, sorted_labels = scores[order], labels[order]
  above = np.searchsorted(sorted_scores, candidates, side="right")
  positives_below = np.concatenate([[0], np.cumsum(sorted_labels == 1)])
  negatives_below = np.concatenate([[0], np.cumsum(sorted_labels == 0)])
  total_positives = positives_below[-1]
  correct = (negatives_below[above]
             + (total_positives - positives_below[above]))
  best = int(np.argmax(correct))  # first maximum: the smallest threshold
  return float(candidates[best]), float(correct[best] / scores.size)


# -- training of the classifiers ----------------------------------------------


def write_baselines_config(workdir: str, baselines: BaselinesConfig) -> str:
  tf.io.gfile.makedirs(workdir)
  path = os.path.join(workdir, BASELINES_FILENAME)
  with tf.io.gfile.GFile(path, "w") as f:
    f.write(config_lib.to_json(baselines))
  return path


def read_baselines_config(workdir: str) -> BaselinesConfig:
  path = os.path.join(workdir, BASELINES_FILENAME)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"{path} does not exist: {workdir!r} is not a "
                            "classifiers workdir of l3_tf.evaluation.baselines")
  with tf.io.gfile.GFile(path) as f:
    return config_lib.from_dict(BaselinesConfig, json.load(f))


def _classifiers_loss(outputs, labels, global_batch_size):
  """Both classifiers' cross-entropy (their parameters are disjoint, so the
  sum trains each on its own loss) and each one's loss and accuracy."""
  metrics = {}
  for key in ("vision", "audio"):
    metrics[f"{key}_loss"], metrics[f"{key}_accuracy"] = (
        step_lib.classification(outputs[key], labels, global_batch_size))
  return metrics["vision_loss"] + metrics["audio_loss"], metrics


CLASSIFIERS_OBJECTIVE = step_lib.Objective(
    _classifiers_loss,
    ("vision_loss", "audio_loss", "vision_accuracy", "audio_accuracy"))


def classifier_training_config(config: config_lib.Config,
                               baselines: BaselinesConfig) -> config_lib.Config:
  """The L3 config with the classifiers' schedule in its `train` section
  (`task.plain_schedule`): what the training loop runs."""
  cfg = baselines.classifier
  return task_lib.plain_schedule(
      config, "classifiers", batch_size=cfg.batch_size_per_replica,
      learning_rate=cfg.learning_rate, num_steps=cfg.num_steps,
      log_every_steps=cfg.log_every_steps,
      checkpoint_every_steps=cfg.checkpoint_every_steps, keep_checkpoints=2,
      seed=cfg.seed)


def classifiers_task(config: config_lib.Config,
                     baselines: BaselinesConfig) -> task_lib.Task:
  """Both classifiers on the labels of `config.data.train_split`, for
  `train.train`: frames and windows as L3 reads them
  (`input_pipeline.train_dataset(labelled=True)`)."""
  num_classes = {}  # found by the plan, before the model is built

  def plan(run_config, num_replicas, num_workers):
    checked = plan_lib.check_config(run_config, num_replicas, num_workers,
                                    balanced=False)
    num_classes["K"] = input_pipeline.check_labelled(checked.builder)
    return checked

  def dataset(run_config, batch, context, seed, builder):
    return input_pipeline.train_dataset(run_config, batch, context, seed=seed,
                                        builder=builder, labelled=True)

  def write_workdir(workdir):
    workdir_lib.write_config(workdir, config)
    write_baselines_config(workdir, baselines)

  return task_lib.Task(
      name="supervised classifiers",
      build_model=lambda: supervised_networks(config, num_classes["K"],
                                              baselines.classifier),
      objective=CLASSIFIERS_OBJECTIVE, dataset=dataset, plan=plan,
      write_workdir=write_workdir, check_model=finite.check_classifier)


def train_classifiers(config: config_lib.Config, baselines: BaselinesConfig,
                      workdir: str,
                      strategy: tf.distribute.Strategy | None = None
                      ) -> dict[str, Any]:
  """Trains (or resumes) both classifiers on the labels of
  `config.data.train_split`, then reports their top-1 accuracy on
  `config.data.eval_split`.

  The loop is the AVC networks' (`train.train`): checkpoints and resuming,
  SIGTERM (`train.TrainingInterrupted` after a checkpoint), the non-finite
  guard (`train.TrainingDiverged`), TensorBoard and the progress bar.

  Args:
    config: the L3 config (data, model, front ends, train.precision,
      train.devices); the classifiers' schedule is `baselines.classifier`
      (`classifier_training_config`).
    baselines: the baselines config.
    workdir: the classifiers workdir (module docstring); its config.json
      is the L3 config.
    strategy: default the current strategy.

  Returns:
    `train.train`'s result with "eval": the accuracies written to
    classifiers_<split>.json (None on other workers than the chief).

  Raises:
    ValueError: a dataset without labels, or a bad batch size.
  """
  strategy = strategy or tf.distribute.get_strategy()
  result = train_lib.train(classifiers_task(config, baselines),
                           classifier_training_config(config, baselines),
                           workdir, strategy)
  if distribute.is_chief(strategy):
    result["eval"] = evaluate_classifiers(workdir)
  return result


def restore_classifiers(workdir: str) -> tuple[config_lib.Config,
                                               BaselinesConfig, keras.Model,
                                               int]:
  """(L3 config, baselines config, float32 classifiers, step) of a workdir.

  Raises:
    FileNotFoundError: not a classifiers workdir, or no checkpoint yet.
  """
  config = workdir_lib.read_config(workdir)
  baselines = read_baselines_config(workdir)
  latest = workdir_lib.latest_checkpoint(workdir)
  if latest is None:
    raise FileNotFoundError(f"no checkpoint in "
                            f"{workdir_lib.checkpoint_dir(workdir)}")
  builder = input_pipeline.load_builder(config.data.dataset,
                                        config.data.data_dir)
  num_classes = input_pipeline.check_labelled(builder)
  model = supervised_networks(config, num_classes, baselines.classifier)
  step = tf.Variable(0, dtype=tf.int64)
  status = tf.train.Checkpoint(model=model, step=step).restore(latest)
  status.expect_partial()
  status.assert_existing_objects_matched()
  return config, baselines, model, int(step.numpy())


def evaluate_classifiers(workdir: str, split: str | None = None
                         ) -> dict[str, Any]:
  """Top-1 accuracy of both classifiers on fixed labelled examples of a
  split; writes <workdir>/classifiers_<split>.json."""
  config, baselines, model, step = restore_classifiers(workdir)
  split = split or config.data.eval_split
  num = baselines.classifier.eval_num_examples
  dataset = input_pipeline.eval_dataset(config, split, num, labelled=True)
  predict = tf.function(lambda f: model(f, training=False))
  correct = {"vision": 0, "audio": 0}
  count = 0
  for features, labels in dataset:
    logits = predict(features)
    labels = labels.numpy()
    for key in correct:
      correct[key] += int(np.sum(logits[key].numpy().argmax(1) == labels))
    count += len(labels)
  if count == 0:
    raise ValueError(f"split {split!r} of {config.data.dataset!r} gave no "
                     "labelled example")
  results = {"vision_accuracy": correct["vision"] / count,
             "audio_accuracy": correct["audio"] / count,
             "num_examples": count, "split": split, "step": step,
             "dataset": config.data.dataset}
  path = os.path.join(workdir, f"classifiers_{split}.json")
  with tf.io.gfile.GFile(path, "w") as f:
    f.write(json.dumps(results, indent=2, sort_keys=True))
  return results


# -- the two baselines on AVC --------------------------------------------------


def pair_scores(classifiers: keras.Model, config: config_lib.Config,
                split: str, num_pairs: int) -> tuple[np.ndarray, np.ndarray]:
  """(direct-combination scores [n], AVC labels [n]) of a split's fixed
  evaluation pairs (`input_pipeline.eval_dataset`)."""
  dataset = input_pipeline.eval_dataset(config, split, num_pairs)
  score = tf.function(lambda f: correspondence_score(classifiers, f))
  scores, labels = [], []
  for features, label in dataset:
    scores.append(score(features).numpy())
    labels.append(label.numpy())
  return np.concatenate(scores), np.concatenate(labels)


def evaluate_direct_combination(classifiers_workdir: str, split: str,
                                num_pairs: int | None = None
                                ) -> dict[str, Any]:
  """Chooses the threshold on `threshold_split`, then evaluates on `split`.

  Returns:
    `evaluate.evaluate_model`'s metrics on `split` plus "threshold",
    "threshold_split", "threshold_accuracy" (on the threshold split) and
    "classifiers_step"; also written to
    <classifiers_workdir>/direct_combination_<split>.json.

  Raises:
    ValueError: the threshold split is the tested split, or is missing.
  """
  config, baselines, classifiers, step = restore_classifiers(
      classifiers_workdir)
  if baselines.threshold_split == split:
    raise ValueError(f"threshold_split={split!r} is the tested split: the "
                     "threshold must be chosen on other data")
  num_pairs = num_pairs or config.data.eval_num_pairs
  threshold_pairs = baselines.threshold_num_pairs or config.data.eval_num_pairs
  scores, labels = pair_scores(classifiers, config, baselines.threshold_split,
                               threshold_pairs)
  threshold, threshold_accuracy = choose_threshold(scores, labels)
  network = direct_combination_network(classifiers, threshold)
  results = evaluate_lib.evaluate_model(network, config, split, num_pairs)
  results.update({"threshold": threshold,
                  "threshold_split": baselines.threshold_split,
                  "threshold_num_pairs": int(labels.size),
                  "threshold_accuracy": threshold_accuracy,
                  "classifiers_step": step})
  path = os.path.join(classifiers_workdir, f"direct_combination_{split}.json")
  with tf.io.gfile.GFile(path, "w") as f:
    f.write(json.dumps(results, indent=2, sort_keys=True))
  return results


def supervised_pretraining_config(config: config_lib.Config,
                                  baselines: BaselinesConfig
                                  ) -> config_lib.Config:
  """The L3 config with the head's schedule (same data, model, pipeline)."""
  return dataclasses.replace(
      config, name=f"{config.name}_supervised_pretraining",
      train=dataclasses.replace(config.train,
                                num_steps=baselines.head_num_steps,
                                learning_rate=baselines.head_learning_rate))


def frozen_trunks_from(classifiers_workdir: str):
  """`prepare_model` for `train.train_and_evaluate`: loads the trained
  trunks into the AVC network and freezes them (only the head trains)."""
  _, _, classifiers, _ = restore_classifiers(classifiers_workdir)
  weights = [trunk.get_weights() for trunk in trunks_of(classifiers)]

  def prepare(avc: keras.Model) -> None:
    vision, audio, _ = model_lib.towers_of(avc)
    for tower, values in zip((vision, audio), weights):
      tower.set_weights(values)
      tower.trainable = False  # also runs its BN in inference mode

  return prepare


def train_supervised_pretraining(classifiers_workdir: str, workdir: str,
                                 strategy: tf.distribute.Strategy | None = None
                                 ) -> dict[str, Any]:
  """Trains the fusion head on frozen supervised trunks; `workdir` becomes
  an ordinary training workdir (evaluate it like L3-Net's)."""
  # The configs only: `frozen_trunks_from` restores the classifiers.
  config = workdir_lib.read_config(classifiers_workdir)
  baselines = read_baselines_config(classifiers_workdir)
  return train_lib.train_and_evaluate(
      supervised_pretraining_config(config, baselines), workdir, strategy,
      prepare_model=frozen_trunks_from(classifiers_workdir))
