"""Visual transfer: the ImageNet linear probe of PAPER.md §5.

The vision trunk is frozen; its conv4_2 (after ReLU) is max-pooled with
kernel = stride = 7 to 4 x 4 x 512 = 8192-d, and a single fully connected
layer is trained on top with softmax cross-entropy. Works on TFDS
`imagenet2012` (manual download) or any labelled image folder
(`<root>/<split>/<label>/<image>`, TFDS `ImageFolder`). Reports top-1 and
top-5 accuracy on the evaluation split.
"""

import dataclasses
import json
import os
from typing import Any

import keras
import tensorflow as tf
import tensorflow_datasets as tfds

from l3_tf.data import image_ops
from l3_tf.evaluation import records


@dataclasses.dataclass(frozen=True)
class ProbeConfig:
  """Training of the linear layer.

  Attributes:
    dataset: a TFDS name with `image` and `label` features (imagenet2012),
      or "folder" to read `image_folder`.
    image_folder: root of `<split>/<label>/<image>` when dataset == "folder".
    data_dir: TFDS data dir (manual downloads are prepared there).
    train_split: split the linear layer is trained on.
    eval_split: split the accuracies are reported on.
    batch_size: images per step.
    epochs: passes over the training split.
    learning_rate: SGD with momentum 0.9, cosine-decayed to 0.
    weight_decay: L2 on the linear layer's kernel.
    augment: random 224 crop + flip in training (central crop otherwise).
    max_train_examples: use only the first N training images (None: all).
    max_eval_examples: evaluate on the first N images (None: all).
    seed: shuffling and augmentation seed.
  """

  dataset: str = "imagenet2012"
  image_folder: str | None = None
  data_dir: str | None = None
  train_split: str = "train"
  eval_split: str = "validation"
  batch_size: int = 256
  epochs: int = 10
  learning_rate: float = 0.1
  weight_decay: float = 5e-4
  augment: bool = True
  max_train_examples: int | None = None
  max_eval_examples: int | None = None
  seed: int = 0


def _builder(config: ProbeConfig):
  if config.dataset == "folder":
    if not config.image_folder or not os.path.isdir(config.image_folder):
      raise FileNotFoundError(
          f"image_folder={config.image_folder!r} is not a directory; expected "
          "<root>/<split>/<label>/<image files>")
    return tfds.ImageFolder(config.image_folder)
  return tfds.builder(config.dataset, data_dir=config.data_dir)


def _split_dataset(builder, split: str, limit: int | None
                   ) -> tuple[tf.data.Dataset, int]:
  """(examples of `split`, their number), first `limit` only if given."""
  known = getattr(builder.info, "splits", None)
  if known and split not in known:
    raise ValueError(f"split {split!r} not in {sorted(known)} of "
                     f"{builder.info.name}")
  count = known[split].num_examples if known else 0
  if not count:  # no metadata (mocked or folder): count without decoding
    raw = builder.as_dataset(split=split,
                             decoders={"image": tfds.decode.SkipDecoding()})
    count = int(raw.reduce(0, lambda n, _: n + 1))
  dataset = builder.as_dataset(split=split, shuffle_files=False)
  if limit:
    dataset, count = dataset.take(limit), min(count, limit)
  if count == 0:
    raise ValueError(f"split {split!r} of {builder.info.name} is empty")
  return dataset, count


def _image_pipeline(dataset: tf.data.Dataset, config: ProbeConfig,
                    training: bool, image_params: image_ops.ImageParams
                    ) -> tf.data.Dataset:
  def preprocess(index, example):
    image = example["image"]  # [h, w, 3] uint8
    if training and config.augment:
      seed = tf.stack([tf.cast(config.seed, tf.int64), index])
      image = image_ops.preprocess_for_train(
          image, seed, dataclasses.replace(
              image_params, brightness_max_delta=0.0,
              saturation_range=(1.0, 1.0)))  # crop + flip only
    else:
      image = image_ops.preprocess_for_eval(image, image_params)
    return image, example["label"]  # [224, 224, 3], []

  dataset = dataset.enumerate()
  if training:
    dataset = dataset.shuffle(10_000, seed=config.seed,
                              reshuffle_each_iteration=True)
  dataset = dataset.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.batch(config.batch_size).prefetch(tf.data.AUTOTUNE)


def probe_model(vision: keras.Model, num_classes: int,
                config: ProbeConfig) -> keras.Model:
  """Frozen trunk -> 8192-d tap -> Dense(num_classes) logits."""
  vision.trainable = False
  image = keras.Input(vision.input.shape[1:], name="image")
  features = vision(image, training=False)["embedding_8192"]  # [b, 8192]
  logits = keras.layers.Dense(
      num_classes, kernel_regularizer=keras.regularizers.L2(config.weight_decay),
      name="linear_probe")(features)
  return keras.Model(image, logits, name="linear_probe")


def run(vision: keras.Model, config: ProbeConfig,
        image_params: image_ops.ImageParams = image_ops.DEFAULT
        ) -> dict[str, Any]:
  """Trains the linear layer on a frozen vision trunk; returns accuracies.

  Args:
    vision: a vision tower (`model.vision_tower`), trained or random.
    config: dataset and optimisation settings.
    image_params: the front end the trunk was trained with.

  Returns:
    JSON-ready dict with top1, top5 (k = min(5, classes)), example counts
    and the settings.
  """
  builder = _builder(config)
  num_classes = builder.info.features["label"].num_classes
  train, num_train = _split_dataset(builder, config.train_split,
                                    config.max_train_examples)
  evaluation, num_eval = _split_dataset(builder, config.eval_split,
                                        config.max_eval_examples)
  train = _image_pipeline(train, config, True, image_params)
  evaluation = _image_pipeline(evaluation, config, False, image_params)

  keras.utils.set_random_seed(config.seed)
  model = probe_model(vision, num_classes, config)
  steps = config.epochs * -(-num_train // config.batch_size)
  schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate,
                                                    max(steps, 1))
  top_k = min(5, num_classes)
  model.compile(
      optimizer=keras.optimizers.SGD(schedule, momentum=0.9),
      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      metrics=[keras.metrics.SparseTopKCategoricalAccuracy(1, name="top1"),
               keras.metrics.SparseTopKCategoricalAccuracy(top_k, name="top5")])
  history = model.fit(train, epochs=config.epochs, verbose=2,
                      shuffle=False)  # `train` is shuffled (seeded) above
  scores = model.evaluate(evaluation, return_dict=True, verbose=0)
  return {
      "top1": float(scores["top1"]),
      "top5": float(scores["top5"]),
      "top5_k": top_k,
      "num_classes": int(num_classes),
      "num_train_examples": num_train,
      "num_eval_examples": num_eval,
      "final_train_loss": float(history.history["loss"][-1]),
      "feature_dim": int(vision.output["embedding_8192"].shape[-1]),
      "settings": dataclasses.asdict(config),
  }


def write_results(results: dict[str, Any], output_dir: str) -> str:
  os.makedirs(output_dir, exist_ok=True)
  path = os.path.join(output_dir, "results.json")
  with open(path, "w") as f:
    json.dump(results, f, indent=2, sort_keys=True)
  return path


def make_record(results: dict[str, Any], config, training_step: int | None,
                dataset_name: str, command_line: str,
                env: dict[str, Any] | None = None,
                run_seconds: float | None = None) -> dict[str, Any]:
  """The report record (`l3_tf.evaluation.records`) of a probe run.

  Args:
    results: what `run` returned.
    config: the `Config` of the probed network (its widths and training).
    training_step: its training step (None: random weights).
    dataset_name: "imagenet2012", or a name for an image folder.
  """
  settings = results["settings"]
  subset = settings["max_train_examples"] or settings["max_eval_examples"]
  return records.make_record(
      experiment="linear_probe", dataset=dataset_name,
      method="L3-Net" if training_step is not None else "Ours random",
      metric="top1", value=results["top1"],
      scale={
          "data": (f"{dataset_name} {'subset' if subset else 'full'}: "
                   f"{results['num_train_examples']} training images "
                   f"({settings['train_split']}), "
                   f"{results['num_eval_examples']} evaluated "
                   f"({settings['eval_split']}), {results['num_classes']} "
                   f"classes; {settings['epochs']} epochs"),
          "network": records.network_scale(config.model),
          "training": records.training_scale(config, training_step),
      },
      details={k: results[k] for k in ("top5", "top5_k", "num_classes",
                                       "feature_dim", "final_train_loss")},
      command_line=command_line, run_seconds=run_seconds, env=env)
