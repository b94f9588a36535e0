"""AVC accuracy on the fixed, balanced evaluation set of a split.

`evaluate_model` scores a model on `input_pipeline.eval_dataset` (central
crops, no augmentation, gain 1, pairs drawn from `data.eval_seed`: the same
pairs every time); `evaluate_workdir` restores a training workdir's latest
checkpoint and writes `<workdir>/eval_<split>.json`.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from l3_tf.data import bad_records
from l3_tf.data import input_pipeline
from l3_tf.model import finite
from l3_tf.training import workdir as workdir_lib


def evaluate_model(model: keras.Model, config, split: str | None = None,
                   num_pairs: int | None = None, builder=None,
                   source: str = "the model") -> dict:
  """AVC metrics of `model` on the evaluation pairs of `split`.

  Args:
    model: an `avc_network` (any compute dtype; logits are float32).
    config: the `Config` that defines the data and the front ends.
    split: default `config.data.eval_split`.
    num_pairs: default `config.data.eval_num_pairs`.
    builder: the TFDS builder (default: from the config).
    source: what the model is (a checkpoint), for errors.

  Returns:
    {"accuracy", "positive_accuracy", "negative_accuracy", "loss",
     "num_pairs", "num_videos", "split", "dataset", "eval_seed"}.

  Raises:
    ValueError: the split yields fewer pairs than asked (no usable videos).
    bad_records.BadRecordError: a damaged record (shard and index named).
    finite.NonFiniteError: a logit is NaN or inf (its pair is named): no
      accuracy is computed from it.
  """
  split = split or config.data.eval_split
  num_pairs = num_pairs or config.data.eval_num_pairs
  dataset = input_pipeline.eval_dataset(config, split, num_pairs,
                                        with_metadata=True, builder=builder)

  @tf.function
  def predict(features):
    return model(features, training=False)  # [b, 2] float32

  labels, logits, videos = [], [], set()
  try:
    for features, label, metadata in dataset:
      logits.append(predict(features).numpy())
      labels.append(label.numpy())
      videos.update(metadata["frame_video_id"].numpy().tolist())
  except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
    if not bad_records.is_bad_input(e):
      raise
    # A damaged shard or frame: name it.
    builder = builder or input_pipeline.load_builder(config.data.dataset,
                                                     config.data.data_dir)
    raise bad_records.error_for(builder, split, e) from None
  if not labels or sum(len(l) for l in labels) != num_pairs:
    got = sum(len(l) for l in labels)
    raise ValueError(
        f"split {split!r} of {config.data.dataset!r} gave {got} evaluation "
        f"pairs instead of {num_pairs}: it has no video that can form a pair")
  labels = np.concatenate(labels)
  logits = np.concatenate(logits).astype(np.float64)  # [pairs, 2]
  finite.check_outputs(logits, f"the {split!r} evaluation logits", source)
  predicted = logits.argmax(axis=1)
  log_probs = logits - np.logaddexp(logits[:, 0], logits[:, 1])[:, None]
  correct = predicted == labels
  return {
      "accuracy": float(correct.mean()),
      "positive_accuracy": float(correct[labels == 1].mean()),
      "negative_accuracy": float(correct[labels == 0].mean()),
      "loss": float(-log_probs[np.arange(len(labels)), labels].mean()),
      "num_pairs": int(len(labels)),
      "num_positives": int((labels == 1).sum()),
      "num_videos": len(videos),
      "split": split,
      "dataset": config.data.dataset,
      "eval_seed": config.data.eval_seed,
  }


def eval_path(workdir: str, split: str) -> str:
  return os.path.join(workdir, f"eval_{split}.json")


def write_results(workdir: str, split: str, results: dict) -> str:
  path = eval_path(workdir, split)
  with tf.io.gfile.GFile(path, "w") as f:
    f.write(json.dumps(results, indent=2, sort_keys=True))
  return path


def evaluate_workdir(workdir: str, split: str | None = None,
                     num_pairs: int | None = None,
                     checkpoint: str | None = None) -> dict:
  """Evaluates a workdir's latest (or given) checkpoint; writes the JSON.

  Returns:
    The metrics of `evaluate_model` plus "step" and "checkpoint".

  Raises:
    finite.NonFiniteError: the checkpoint's weights or logits are not
      finite; nothing is written.
  """
  checkpoint = checkpoint or workdir_lib.latest_checkpoint(workdir)
  config, model, step = workdir_lib.restore_avc_model(workdir, checkpoint)
  split = split or config.data.eval_split
  results = evaluate_model(model, config, split, num_pairs,
                           source=f"checkpoint {checkpoint}")
  results["step"] = step
  results["checkpoint"] = checkpoint
  write_results(workdir, split, results)
  return results
