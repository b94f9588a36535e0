"""Sound classification with L3 audio features, end to end (PAPER.md §5).

  prepared TFDS audio dataset (data_prep/esc50, esc10, dcase2013_scenes,
  urbansound8k)
  -> every clip cut into 1-second sub-clips every `hop_seconds`
  -> `embed.Embedder` features (conv4_2 before ReLU, max-pooled: the
     `embedding_6144` tap, 4 x 3 x W4 wide)
  -> the protocol of `l3_tf.evaluation.transfer` over the dataset's official folds,
     with the paper's linear SVMs (`transfer.SvmSettings`) or OpenL3's MLP
     (`transfer_mlp.MlpSettings`): the same folds, features and record.

Weights, sub-clips, features and their cache: `l3_tf.evaluation.transfer_features`.

Datasets whose clips carry their source recording (UrbanSound8K's fsID,
`AudioDataset.group_feature`) are checked in every round: one recording on
both sides of a round is an error (`transfer.fold_rounds`), never a silent
leak.
"""

import dataclasses
import importlib
import os
import time
from typing import Any

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from l3_tf.evaluation import records
from l3_tf.evaluation import report
from l3_tf.evaluation import transfer
from l3_tf.evaluation import transfer_features


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
  svm_selection: str = "inner_cv"  # how the SVMs' C is chosen (transfer)


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
        group_feature="fsid", missing_folds_allowed=True,
        svm_selection="validation_fold"),
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
    "clips_per_fold", "generated", "official"}); "generated" is True when
    the build is of a generated release (`data_prep.dummy_media`, recorded
    by its builder), and "official" only when it is not and every fold of
    the release was built with its official number of clips and none was
    left out.

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
  generated = is_generated(builder)
  if generated:
    logging.warning("%s in %s was built from generated data "
                    "(data_prep.dummy_media): not the official figure",
                    spec.name, builder.data_dir)
  official = (folds is None and not missing and not generated
              and spec.fold_sizes is not None
              and tuple(sizes.values()) == spec.fold_sizes)
  info = {"used": ids, "requested": list(folds) if folds else None,
          "missing_from_build": missing, "clips_per_fold": sizes,
          "generated": generated, "official": official}
  return [(f, spec.splits[f - 1]) for f in ids], info


def is_generated(builder) -> bool:
  """Whether the build is of a generated release: its builder's
  `info.metadata["generated"]` (`data_prep.media_builder`; builds made before
  that was recorded have no such key: not generated)."""
  metadata = builder.info.metadata
  return bool(metadata is not None and metadata.get("generated", False))


def dataset_features(weights: transfer_features.Weights, builder, spec: AudioDataset,
                     hop_seconds: float, center: bool = False,
                     cache: transfer_features.FeatureCache | None = None,
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
    arrays, from_cache[split] = transfer_features.split_features(
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


def run(weights: transfer_features.Weights, builder, spec: AudioDataset, hop_seconds: float,
        settings=transfer.SvmSettings(),
        cache: transfer_features.FeatureCache | None = None, center: bool = False,
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
          "tap": f"{transfer_features.EMBEDDING} (conv4_2 before ReLU, max-pooled)",
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
  """What a record says of the data: generated or real, full or subset,
  official or not."""
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
  if folds.get("generated", False):  # (records before the key: real data)
    name = report.DATASET_NAMES.get(results["dataset"], results["dataset"])
    text = f"generated data (data_prep.dummy_media), not {name}: {text}"
  elif not folds["official"] and not parts:
    text += (f" (not the official release's clips per fold: "
             f"{sum(folds['clips_per_fold'].values())} clips)")
  if not folds["official"]:
    text += "; not the official figure"
  return (f"{text}: {features['num_clips']} clips, "
          f"{features['num_subclips']} sub-clips at hop "
          f"{features['hop_seconds']:g} s; {results['protocol']}")


def make_record(results: dict[str, Any], weights: transfer_features.Weights,
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
             "generated": results["folds"].get("generated", False),
             "weights": results["weights"]}
  if results["classifier"] == "svm":
    details["chosen_c"] = [r["chosen_c"] for r in results["rounds"]]
    details["c_chosen_on"] = [r["c_chosen_on"] for r in results["rounds"]]
    details["svm_solver"] = [r["solver"]
                             for r in results["rounds"]]
    details["unconverged_fits"] = sum(r["unconverged_fits"]
                                      for r in results["rounds"])
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
