"""Sound classification with L3 audio features, end to end (PAPER.md §5).

  prepared TFDS audio dataset (data_prep/esc50, esc10, dcase2013_scenes,
  urbansound8k)
  -> every clip cut into 1-second sub-clips every `hop_seconds`
  -> `embed.Embedder` features (conv4_2 before ReLU, max-pooled: the
     `embedding_6144` tap, 4 x 3 x W4 wide)
  -> the protocol of `l3_tf.evaluation.transfer` over the dataset's official folds,
     with the paper's linear SVMs (`transfer.SvmSettings`) or OpenL3's MLP
     (`transfer_mlp.MlpSettings`): the same folds, features and record.

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

Datasets whose clips carry their source recording (UrbanSound8K's fsID,
`AudioDataset.group_feature`) are checked in every round: one recording on
both sides of a round is an error (`transfer.fold_rounds`), never a silent
leak.
"""

import dataclasses
import hashlib
import importlib
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
from l3_tf.evaluation import records
from l3_tf.evaluation import transfer
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
class AudioDataset:
  """How the paper evaluates on one labelled audio dataset.

  Attributes:
    name: the TFDS name (and `--dataset` value).
    builder_module: module holding its `Builder` (data_prep/).
    splits: the splits, in fold order: clip fold id = position + 1.
    test_folds: fold ids tested in each round; None = each fold once.
    protocol: a description for the results.
    fold_sizes: clips per split of the official release (to tell a full
      build of it from a subset or another corpus in the same layout).
    group_feature: the feature naming each clip's source recording, kept
      apart across the folds (checked), or None.
    missing_folds_allowed: a build without some folds runs on the others
      (the result says it is not the official figure); otherwise an error.
  """

  name: str
  builder_module: str
  splits: tuple[str, ...]
  test_folds: tuple[tuple[int, ...], ...] | None
  protocol: str
  fold_sizes: tuple[int, ...] | None = None
  group_feature: str | None = None
  missing_folds_allowed: bool = False


_FOLDS = tuple(f"fold{k}" for k in range(1, 6))
DATASETS = {
    "esc50": AudioDataset(
        "esc50", "data_prep.esc50.esc50_dataset_builder", _FOLDS, None,
        "5-fold cross-validation on the official ESC-50 folds",
        fold_sizes=(400,) * 5),
    "esc10": AudioDataset(
        "esc10", "data_prep.esc10.esc10_dataset_builder", _FOLDS, None,
        "5-fold cross-validation on the official ESC-10 folds",
        fold_sizes=(80,) * 5),
    "dcase2013_scenes": AudioDataset(
        "dcase2013_scenes",
        "data_prep.dcase2013_scenes.dcase2013_scenes_dataset_builder",
        ("train", "test"), ((2,),),
        "official DCASE 2013 scenes split: train on `train`, test on `test`",
        fold_sizes=(100, 100)),
    "urbansound8k": AudioDataset(
        "urbansound8k", "data_prep.urbansound8k.urbansound8k_dataset_builder",
        tuple(f"fold{k}" for k in range(1, 11)), None,
        "leave-one-fold-out over the official UrbanSound8K folds",
        fold_sizes=(873, 888, 925, 990, 936, 823, 838, 806, 816, 837),
        group_feature="fsid", missing_folds_allowed=True),
}


def dataset_spec(name: str) -> AudioDataset:
  if name not in DATASETS:
    raise ValueError(f"dataset={name!r}; expected one of {sorted(DATASETS)}")
  return DATASETS[name]


def prepare_dataset(name: str, data_dir: str,
                    manual_dir: str | None = None, num_workers: int = 2):
  """The prepared TFDS builder of an audio dataset, built once.

  Args:
    name: a key of `DATASETS`.
    data_dir: TFDS data dir of the prepared records.
    manual_dir: the dataset's files in their official layout; needed only
      the first time (when `data_dir` does not hold the prepared dataset).
    num_workers: files decoded in parallel while building.

  Raises:
    ValueError: unknown dataset, or not prepared and no manual_dir.
    FileNotFoundError: `manual_dir` is not a folder with files in it (the
      message holds the dataset's download instructions).
  """
  spec = dataset_spec(name)
  module = importlib.import_module(spec.builder_module)
  builder = module.Builder(data_dir=data_dir, num_workers=num_workers)
  if builder.is_prepared():
    logging.info("%s already prepared in %s", name, builder.data_dir)
    return builder
  if not manual_dir:
    raise ValueError(f"{name} is not prepared in data_dir={data_dir!r}; pass "
                     "--manual_dir with the dataset's files to build it")
  if not os.path.isdir(manual_dir) or not os.listdir(manual_dir):
    instructions = getattr(module.Builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", "")
    raise FileNotFoundError(
        f"manual_dir={manual_dir!r} is not a folder holding the {name} files "
        f"(it is {'empty' if os.path.isdir(manual_dir) else 'missing or a file'}"
        f"); {instructions.strip()}")
  logging.info("building %s from %s into %s", name, manual_dir, data_dir)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=manual_dir, try_download_gcs=False))
  return builder


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


def fold_splits(builder, spec: AudioDataset,
                folds: list[int] | None = None
                ) -> tuple[list[tuple[int, str]], dict[str, Any]]:
  """The (fold id, split) pairs a run uses and what the result must say.

  A fold id is the split's official number (its position in `spec.splits`
  + 1), whichever folds are used.

  Args:
    builder: the prepared dataset.
    spec: its protocol.
    folds: only these fold ids (a quick run, recorded as a subset).

  Returns:
    ([(fold id, split)], {"used", "requested", "missing_from_build",
    "clips_per_fold", "official"}); "official" is True only when every
    fold of the release was built with its official number of clips and
    none was left out.

  Raises:
    ValueError: `folds` on a dataset without folds, out of range, fewer
      than two, or not built; a split missing from a build of a dataset
      that needs them all.
  """
  ids = list(range(1, len(spec.splits) + 1))
  if folds is not None:
    if spec.test_folds is not None:
      raise ValueError(f"folds={list(folds)}: {spec.name} has no folds to "
                       f"choose from ({spec.protocol})")
    outside = [f for f in folds if f not in ids]
    if outside or len(set(folds)) < 2:
      raise ValueError(f"folds={list(folds)}: expected at least two of "
                       f"{spec.name}'s folds 1..{len(ids)}")
    ids = sorted(set(folds))
  missing = [f for f in range(1, len(spec.splits) + 1)
             if spec.splits[f - 1] not in builder.info.splits]
  if missing and not spec.missing_folds_allowed:
    split = spec.splits[missing[0] - 1]
    raise ValueError(f"{builder.name} in {builder.data_dir} has no split "
                     f"{split!r}; it has {sorted(builder.info.splits)}")
  if folds is not None and set(ids) & set(missing):
    raise ValueError(f"folds={list(folds)}: folds "
                     f"{sorted(set(ids) & set(missing))} are not in the "
                     f"build in {builder.data_dir}")
  if missing:
    logging.warning("%s: folds %s are not in the build; using folds %s: "
                    "not the official %d-fold figure", spec.name, missing,
                    [f for f in ids if f not in missing], len(spec.splits))
  ids = [f for f in ids if f not in missing]
  sizes = {f: builder.info.splits[spec.splits[f - 1]].num_examples
           for f in ids}
  official = (folds is None and not missing and spec.fold_sizes is not None
              and tuple(sizes.values()) == spec.fold_sizes)
  info = {"used": ids, "requested": list(folds) if folds else None,
          "missing_from_build": missing, "clips_per_fold": sizes,
          "official": official}
  return [(f, spec.splits[f - 1]) for f in ids], info


def dataset_features(weights: Weights, builder, spec: AudioDataset,
                     hop_seconds: float, center: bool = False,
                     cache: FeatureCache | None = None,
                     max_clips_per_split: int | None = None,
                     folds: list[int] | None = None
                     ) -> tuple[transfer.SubclipFeatures, dict[str, Any]]:
  """The dataset's `SubclipFeatures` (fold = the split's official number).

  Args:
    folds: only these fold ids (see `fold_splits`).

  Returns:
    (features, {"seconds": wall time, "from_cache": {split: bool},
    "folds": `fold_splits`' account}).

  Raises:
    ValueError: a clip's stored fold contradicts its split; see
      `fold_splits`.
  """
  started = time.perf_counter()
  pairs, fold_info = fold_splits(builder, spec, folds)
  parts, from_cache = [], {}
  for fold, split in pairs:
    arrays, from_cache[split] = split_features(
        weights, builder, split, hop_seconds, center, cache,
        max_clips_per_split, spec.group_feature)
    stored = arrays["clip_folds_stored"]
    if np.any((stored >= 0) & (stored != fold)):
      bad = arrays["clip_ids"][np.flatnonzero(stored != fold)[0]]
      raise ValueError(f"{builder.name}: clip {bad!r} of split {split!r} "
                       f"says fold {stored.max()}, expected {fold}")
    parts.append((arrays, fold))
  offsets = np.cumsum([0] + [len(a["clip_labels"]) for a, _ in parts])
  data = transfer.SubclipFeatures(
      features=np.concatenate([a["features"] for a, _ in parts]),
      clip_index=np.concatenate([a["clip_index"] + offset
                                 for (a, _), offset in zip(parts, offsets)]),
      clip_labels=np.concatenate([a["clip_labels"] for a, _ in parts]),
      clip_folds=np.concatenate([np.full(len(a["clip_labels"]), fold)
                                 for a, fold in parts]),
      clip_ids=np.concatenate([a["clip_ids"] for a, _ in parts]),
      class_names=list(builder.info.features["label"].names),
      clip_groups=(np.concatenate([a["clip_groups"] for a, _ in parts])
                   if spec.group_feature else None))
  return data, {"seconds": time.perf_counter() - started,
                "from_cache": from_cache, "folds": fold_info}


def run(weights: Weights, builder, spec: AudioDataset, hop_seconds: float,
        settings=transfer.SvmSettings(),
        cache: FeatureCache | None = None, center: bool = False,
        max_clips_per_split: int | None = None,
        folds: list[int] | None = None) -> dict[str, Any]:
  """Features (cached) + the protocol; a JSON-ready results dict.

  Args:
    settings: the classifier: `transfer.SvmSettings` (the paper's linear
      SVMs) or `transfer_mlp.MlpSettings` (OpenL3's MLP).
    folds: only these fold ids (a quick run; said in "folds" and "subset").

  Returns:
    `transfer.cross_validate`'s results plus "dataset", "protocol",
    "classifier", "weights", "network" (widths, narrowed, width
    multiplier), "features" (hop, dims, counts, cache use), "folds" (used,
    requested, missing from the build, official or not), "timing" (seconds
    of the features, the classifier and in total) and "subset" (clips per
    split limit, folds).
  """
  started = time.perf_counter()
  data, feature_info = dataset_features(weights, builder, spec, hop_seconds,
                                        center, cache, max_clips_per_split,
                                        folds)
  classifier_started = time.perf_counter()
  test_folds = ([list(f) for f in spec.test_folds] if spec.test_folds
                else None)
  results = transfer.cross_validate(data, settings, test_folds)
  classifier_seconds = time.perf_counter() - classifier_started
  model = weights.config.model
  subset = {}
  if max_clips_per_split:
    subset["max_clips_per_split"] = max_clips_per_split
  if folds:
    subset["folds"] = feature_info["folds"]["used"]
  results.update({
      "dataset": spec.name,
      "protocol": spec.protocol,
      "classifier": classifier_name(settings),
      "weights": weights.description,
      "weights_identity": weights.identity,
      "training_step": weights.training_step,
      "network": {"widths": list(model.widths),
                  "width_multiplier": model.width_multiplier,
                  "narrowed": model.is_narrowed},
      "features": {
          "tap": f"{EMBEDDING} (conv4_2 before ReLU, max-pooled)",
          "dim": int(data.features.shape[1]),
          "hop_seconds": hop_seconds,
          "center": center,
          "num_clips": int(len(data.clip_labels)),
          "num_subclips": int(len(data.features)),
          "compute_dtype": weights.identity["compute_dtype"],
          "from_cache": feature_info["from_cache"],
      },
      "folds": feature_info["folds"],
      "subset": subset or None,
      "timing": {"features_seconds": feature_info["seconds"],
                 "classifier_seconds": classifier_seconds,
                 "total_seconds": time.perf_counter() - started},
  })
  return results


def classifier_name(settings) -> str:
  """"svm" or "mlp": the `--classifier` of these settings."""
  return "svm" if isinstance(settings, transfer.SvmSettings) else "mlp"


def data_scale(results: dict[str, Any]) -> str:
  """What a record says of the data: full or subset, official or not."""
  features, subset, folds = (results["features"], results["subset"] or {},
                             results["folds"])
  parts = []
  if "max_clips_per_split" in subset:
    parts.append(f"first {subset['max_clips_per_split']} clips per split")
  if "folds" in subset:
    parts.append(f"folds {subset['folds']} only")
  if folds["missing_from_build"]:
    parts.append(f"folds {folds['missing_from_build']} missing from the "
                 "build")
  text = f"{results['dataset']} " + (
      f"subset ({'; '.join(parts)})" if parts else "full")
  if not folds["official"] and not parts:
    text += (f" (not the official release's clips per fold: "
             f"{sum(folds['clips_per_fold'].values())} clips)")
  if not folds["official"]:
    text += "; not the official figure"
  return (f"{text}: {features['num_clips']} clips, "
          f"{features['num_subclips']} sub-clips at hop "
          f"{features['hop_seconds']:g} s; {results['protocol']}")


def make_record(results: dict[str, Any], weights: Weights,
                env: dict[str, Any] | None = None) -> dict[str, Any]:
  """The report record (`l3_tf.evaluation.records`) of a `run` (with "command")."""
  features = results["features"]
  method = "L3-Net" if weights.training_step is not None else "Ours random"
  details = {"fold_accuracies": results["fold_accuracies"],
             "std": results["std"],
             "folds": results["folds"]["used"],
             "classifier": results["classifier"],
             "compute_dtype": features["compute_dtype"],
             "features_seconds": results["timing"]["features_seconds"],
             "classifier_seconds": results["timing"]["classifier_seconds"],
             "features_from_cache": features["from_cache"],
             "weights": results["weights"]}
  if results["classifier"] == "svm":
    details["chosen_c"] = [r["chosen_c"] for r in results["rounds"]]
  else:
    method += " (MLP)"
    details["mlp_config"] = results["settings"]["name"]
    details["chosen"] = [[r["chosen_learning_rate"], r["chosen_weight_decay"]]
                         for r in results["rounds"]]
  return records.make_record(
      experiment="sound_classification", dataset=results["dataset"],
      method=method, metric="accuracy", value=results["mean_accuracy"],
      scale={
          "data": data_scale(results),
          "network": records.network_scale(weights.config.model),
          "training": records.training_scale(weights.config,
                                             weights.training_step),
      },
      details=details, command_line=results.get("command", ""),
      run_seconds=results["timing"].get("run_seconds"), env=env)
