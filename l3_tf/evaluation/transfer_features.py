"""The features of the transfer protocol: weights loaded, clips cut into
1-second sub-clips and embedded, and the result cached on disk.

Features come from the same `Embedder` code whether the weights are random,
a training workdir or a SavedModel export. They are cached on disk, one file
per split, under a key that hashes everything that determines them (see
`feature_identity`), so a second run with other SVM settings reads them back
instead of recomputing them.

Sub-clips: windows start inside the clip (`center=False`) and are kept while
they end inside it, so a clip of D seconds gives 1 + floor((D - 1) / hop)
sub-clips; with a hop of 1 s they tile the clip exactly. A clip shorter
than one window (UrbanSound8K has many) gives one window with the clip in
its middle: zero-padded by floor(P / 2) samples before and the rest after,
P = 48000 - N, as the code behind OpenL3's paper pads its classifiers'
inputs (marl/l3embedding, `data/usc/features.py` `get_l3_frames_uniform`).
The OpenL3 library (`openl3.core._pad_audio`) instead pads a short clip at
its end only, after its optional half-window `center` padding.
"""

import dataclasses
import hashlib
import json
import os
import time
from typing import Any, Iterator

from absl import logging
import keras
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from l3_tf.data import audio_example
from l3_tf.serving import embed as embed_lib
from l3_tf.serving import embed_inputs
from l3_tf.serving import export as export_lib
from l3_tf.training import config as config_lib
from l3_tf.training import workdir as workdir_lib

# Bump when the feature computation changes in a way the key does not see.
# 2: short clips centred in their window; the clips' source recordings kept.
FEATURES_VERSION = 2
EMBEDDING = "embedding_6144"
# Windows embedded per network call, and the most windows held in memory.
EMBED_BATCH_SIZE = 32
WINDOWS_PER_CHUNK = 512


@dataclasses.dataclass(frozen=True)
class Weights:
  """An embedder and what identifies its weights.

  Attributes:
    embedder: the `embed.Embedder`.
    config: the config of the network (front ends, widths, training).
    description: for result files ("random (...)", "<workdir> (step N)").
    identity: JSON-ready dict that changes whenever the weights do.
    training_step: step of the trained weights; None for random weights.
  """

  embedder: embed_lib.Embedder
  config: config_lib.Config
  description: str
  identity: dict[str, Any]
  training_step: int | None


def _file_sha256(path: str) -> str:
  digest = hashlib.sha256()
  with tf.io.gfile.GFile(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def load_weights(weights: str, random_config: config_lib.Config,
                 seed: int = 0, compute_dtype: str = "float32") -> Weights:
  """The embedder named by a `--weights` value.

  Args:
    weights: "random", a training workdir (latest checkpoint) or a SavedModel
      written by `experiments.export`.
    random_config: the architecture of "random".
    seed: initialisation seed of "random".
    compute_dtype: "float32" or "bfloat16" (see `export.L3Serving`).

  Raises:
    FileNotFoundError: `weights` is none of these.
  """
  common = {"compute_dtype": compute_dtype}
  if weights == "random":
    config, avc, description = workdir_lib.load_network(
        "random", random_config, seed)
    identity = {"kind": "random", "seed": seed, "keras": keras.__version__,
                "model": config_lib.to_dict(config.model)}
    embedder = embed_lib.Embedder.from_model(avc, config, description,
                                             compute_dtype)
    step = None
  elif export_lib.is_saved_model(weights):
    assets = export_lib.read_assets(weights)
    config = assets["config"]
    step = assets["export"]["step"]
    embedder = embed_lib.Embedder.load(weights, compute_dtype)
    identity = {"kind": "saved_model", "path": os.path.abspath(weights),
                "export": assets["export"],
                "variables_sha256": _file_sha256(os.path.join(
                    weights, "variables", "variables.index"))}
    description = f"{weights} (SavedModel, step {step}, config {config.name})"
  elif tf.io.gfile.exists(workdir_lib.config_path(weights)):
    checkpoint = workdir_lib.latest_checkpoint(weights)
    config, avc, step = workdir_lib.restore_avc_model(weights, checkpoint)
    description = f"{weights} (step {step}, config {config.name})"
    embedder = embed_lib.Embedder.from_model(avc, config, description,
                                             compute_dtype)
    # The .index file holds every tensor's checksum: it changes with them.
    identity = {"kind": "workdir", "path": os.path.abspath(weights),
                "checkpoint": os.path.abspath(checkpoint), "step": step,
                "checkpoint_index_sha256": _file_sha256(checkpoint + ".index")}
  else:
    raise FileNotFoundError(
        f"weights={weights!r} is neither 'random', a training workdir (no "
        f"{workdir_lib.CONFIG_FILENAME}) nor an l3_tf SavedModel")
  identity.update(common)
  identity["model"] = config_lib.to_dict(config.model)
  identity["audio_params"] = config_lib.to_dict(config.audio)
  return Weights(embedder, config, description, identity, step)


def feature_identity(weights: Weights, builder, split: str,
                     hop_seconds: float, center: bool,
                     max_clips: int | None) -> dict[str, Any]:
  """Everything that determines the features of one split."""
  audio = weights.config.audio
  return {
      "features_version": FEATURES_VERSION,
      "weights": weights.identity,
      "dataset": {"name": builder.name, "version": str(builder.version),
                  "config": builder.builder_config.name
                            if builder.builder_config else None,
                  "data_dir": os.path.abspath(builder.data_dir),
                  "split": split,
                  "num_examples": builder.info.splits[split].num_examples,
                  "max_clips": max_clips},
      "hop_samples": embed_inputs.hop_samples(hop_seconds, audio),
      "center": center,
      "embedding": EMBEDDING,
  }


def identity_key(identity: dict[str, Any]) -> str:
  text = json.dumps(identity, sort_keys=True, default=str)
  return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


class FeatureCache:
  """Split features on disk: `<root>/<dataset>/<key>.npz` + `<key>.json`.

  The JSON beside each file is the identity it was computed for, readable
  by people; writes go to a temporary name first, so an interrupted run
  never leaves a truncated file under a valid key.
  """

  def __init__(self, root: str):
    self.root = root

  def _paths(self, identity: dict[str, Any]) -> tuple[str, str]:
    folder = os.path.join(self.root, identity["dataset"]["name"])
    key = identity_key(identity)
    return (os.path.join(folder, f"{key}.npz"),
            os.path.join(folder, f"{key}.json"))

  def load(self, identity: dict[str, Any]) -> dict[str, np.ndarray] | None:
    path, _ = self._paths(identity)
    if not os.path.exists(path):
      return None
    with np.load(path, allow_pickle=False) as stored:
      return {name: stored[name] for name in stored.files}

  def save(self, identity: dict[str, Any], arrays: dict[str, np.ndarray]
           ) -> str:
    path, meta = self._paths(identity)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    staging = f"{path}.tmp-{os.getpid()}.npz"
    np.savez(staging, **arrays)
    os.replace(staging, path)
    with open(meta, "w") as f:
      json.dump(identity, f, indent=2, sort_keys=True, default=str)
    return path


def read_clips(builder, split: str, max_clips: int | None = None,
               group_feature: str | None = None) -> Iterator[dict[str, Any]]:
  """Clips of a split in stored order: clip_id, waveform (float32, 48 kHz),
  label, fold (or None), group (the `group_feature`'s value, or -1)."""
  dataset = builder.as_dataset(split=split, shuffle_files=False)
  if max_clips:
    dataset = dataset.take(max_clips)
  for example in tfds.as_numpy(dataset):
    yield {
        "clip_id": example["clip_id"].decode("utf-8"),
        "waveform": (example["audio"].astype(np.float32)
                     / audio_example.AUDIO_SCALE),
        "label": int(example["label"]),
        "fold": int(example["fold"]) if "fold" in example else None,
        "group": int(example[group_feature]) if group_feature else -1,
    }


def subclip_windows(waveform: np.ndarray, hop_seconds: float,
                    params) -> np.ndarray:
  """float32 [T, window]: a clip's sub-clips (see the module docstring)."""
  window = params.clip_samples
  if waveform.size < window:  # centred, as OpenL3's classifiers' inputs
    starts = np.array([-((window - waveform.size) // 2)], np.int64)  # [1]
  else:
    starts = embed_inputs.window_starts(waveform.size, hop_seconds, False,
                                     params, cover_end=False)  # [T]
  return embed_inputs.extract_windows(waveform, starts, window)


def _embed_clips(embedder: embed_lib.Embedder, clips: Iterator[dict],
                 hop_seconds: float, center: bool, log_name: str
                 ) -> dict[str, np.ndarray]:
  """Sub-clip features of clips; windows of many clips share network calls."""
  params = embedder.audio_params
  features, clip_index, labels, ids, folds, groups = [], [], [], [], [], []
  pending: list[np.ndarray] = []
  started = time.perf_counter()
  num_windows = 0

  def flush():
    if pending:
      windows = np.concatenate(pending)  # [n, 48000]
      features.append(embedder.embed_windows(windows, EMBEDDING,
                                             EMBED_BATCH_SIZE))
      pending.clear()

  for index, clip in enumerate(clips):
    if center:
      starts = embed_inputs.window_starts(clip["waveform"].size, hop_seconds,
                                       True, params, cover_end=False)  # [T]
      windows = embed_inputs.extract_windows(clip["waveform"], starts,
                                          params.clip_samples)
    else:
      windows = subclip_windows(clip["waveform"], hop_seconds, params)
    pending.append(windows)  # [T, 48000]
    clip_index.append(np.full(len(windows), index, np.int64))
    labels.append(clip["label"])
    ids.append(clip["clip_id"])
    folds.append(-1 if clip["fold"] is None else clip["fold"])
    groups.append(clip["group"])
    num_windows += len(windows)
    if sum(p.shape[0] for p in pending) >= WINDOWS_PER_CHUNK:
      flush()
      elapsed = time.perf_counter() - started
      logging.info("%s: %d clips, %d sub-clips, %.2f s per sub-clip",
                   log_name, index + 1, num_windows, elapsed / num_windows)
  flush()
  if not labels:
    raise ValueError(f"{log_name}: no clip to embed")
  return {
      "features": np.concatenate(features).astype(np.float32),  # [n, D]
      "clip_index": np.concatenate(clip_index),
      "clip_labels": np.asarray(labels, np.int64),
      "clip_ids": np.asarray(ids),
      "clip_folds_stored": np.asarray(folds, np.int64),
      "clip_groups": np.asarray(groups, np.int64),
  }


def split_features(weights: Weights, builder, split: str, hop_seconds: float,
                   center: bool = False, cache: FeatureCache | None = None,
                   max_clips: int | None = None,
                   group_feature: str | None = None
                   ) -> tuple[dict[str, np.ndarray], bool]:
  """(the split's sub-clip feature arrays, whether they came from the cache)."""
  identity = feature_identity(weights, builder, split, hop_seconds, center,
                              max_clips)
  identity["group_feature"] = group_feature
  if cache is not None:
    stored = cache.load(identity)
    if stored is not None:
      logging.info("%s/%s: features from the cache", builder.name, split)
      return stored, True
  arrays = _embed_clips(weights.embedder,
                        read_clips(builder, split, max_clips, group_feature),
                        hop_seconds, center, f"{builder.name}/{split}")
  if cache is not None:
    cache.save(identity, arrays)
  return arrays, False
