"""Sound classification transfer (PAPER.md §5): L3 audio features + linear SVMs.

  python -m experiments.audio_transfer --dataset=esc10 \
      --manual_dir=../shared/data/esc10 --weights=random \
      --output_dir=runs/esc10_random [--hop_seconds=0.5] \
      [--record=results/esc10_random.json]

--dataset: esc10, esc50, dcase2013_scenes or urbansound8k (10 folds, leave
one fold out; `--folds=1,2,10` for a quick run on some of them, recorded as
a subset; a build missing folds runs on the others and says it is not the
official figure; a source recording (fsID) on both sides of a round is an
error). A build of a generated release (`python -m data_prep.dummy_media`,
even the release-sized urbansound8k_full) is recorded as generated data,
never as the dataset or its official figure.

--svm_solver: auto (default), gram or primal: how the linear SVMs are
solved. gram = libsvm on the Gram matrix of the training sub-clips (the
fastest while it fits: ESC-50 size); primal = Newton on the primal
without it (l3_tf/evaluation/svm_newton.py: the full UrbanSound8K's ~48k
training sub-clips would need 26 GiB; every fit carries a certified duality
gap, fits left above it are counted per round); auto takes gram when its
matrix fits in half the memory available, logs its choice, and each round
of results.json says which solver it used.

--svm_selection: how C is chosen inside the training folds: inner_cv
(leave each training fold out, the paper's ESC-50 protocol) or
validation_fold (OpenL3's rule, the one its MLP uses here too: the fold
before the test fold). Default: validation_fold for urbansound8k (9 inner
fits per round would cost 9x as much at 48k sub-clips), inner_cv otherwise.

--classifier: svm (the paper's linear SVMs, default) or mlp (OpenL3's MLP,
l3_tf/evaluation/transfer_mlp.py, schedule --mlp_config: openl3 = theirs with its
learning-rate x weight-decay search, demo = their defaults without it);
both on the same folds, feature cache and result record.

--weights: "random" (the paper's "Ours random" row; architecture of
--random_config), a training workdir, or a SavedModel export.

--mode=finetune also fine-tunes the audio tower plus a linear classifier on
the same folds (l3_tf/evaluation/finetune.py; --finetune_learning_rate, _epochs,
_batch_size, --[no]finetune_freeze_batch_norm; weights "random" or a
workdir) and reports it beside the SVM figure (results.json "finetune").

The dataset is built once from --manual_dir into --data_dir (TFDS records,
default <cache_dir>/tfds) and read from there afterwards; features are cached
in <cache_dir>/features keyed by everything that determines them, so a rerun
with other SVM settings (--c_grid, --inner_folds) skips the network.

Writes <output_dir>/results.json (mean_accuracy, fold_accuracies, std, chosen
C per round, settings, timing, weights, network widths) and
confusion_matrix.png; --record also writes a small record for the report.

Default hop 0.5 s (half-overlapping 1-second sub-clips; the paper gives no
hop). Measured on ESC-10 with random 1/8-width features: 74.5% at hop 0.5 s
against 66.0% at 1 s (non-overlapping), so the overlap matters; a smaller hop
costs more than the budget allows here. The full network embeds one
sub-clip in ~0.1-0.45 s on this project's 2-core reference machine (idle to
loaded), so ESC-10 at hop 0.5 s (3,600 sub-clips) plus the SVMs stays within
45 minutes; hop 0.25 s would double the features and quadruple the SVMs.
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import dataclasses
import json
import os
import time

from absl import app
from absl import flags
from absl import logging

from experiments import cli
from experiments import configs
from l3_tf.evaluation import audio_transfer
from l3_tf.evaluation import finetune
from l3_tf.evaluation import records
from l3_tf.evaluation import transfer
from l3_tf.evaluation import transfer_features
from l3_tf.training import train
from l3_tf.training import workdir as workdir_lib

_DATASET = flags.DEFINE_enum("dataset", None, sorted(audio_transfer.DATASETS),
                             "the labelled audio dataset", required=True)
_MANUAL_DIR = flags.DEFINE_string(
    "manual_dir", None, "the dataset's files in their official layout "
    "(needed the first time, to build it)")
_WEIGHTS = flags.DEFINE_string(
    "weights", "random", "'random', a training workdir or a SavedModel")
_RANDOM_CONFIG = flags.DEFINE_string(
    "random_config", "paper", "architecture config used with --weights=random")
_SEED = flags.DEFINE_integer("seed", 0, "initialisation seed of 'random'")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "where results go",
                                  required=True)
_CACHE_DIR = flags.DEFINE_string(
    "cache_dir", os.environ.get("L3_CACHE_DIR",
                                os.path.expanduser("~/.cache/l3_tf")),
    "feature cache and default TFDS data dir (env L3_CACHE_DIR)")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "TFDS data dir of the prepared dataset "
    "(default <cache_dir>/tfds)")
_HOP = flags.DEFINE_float("hop_seconds", 0.5,
                          "hop between the 1-second sub-clips")
_DTYPE = flags.DEFINE_enum("compute_dtype", "float32",
                           ["float32", "bfloat16"], "network compute dtype")
_C_GRID = flags.DEFINE_list(
    "c_grid", [str(c) for c in transfer.SvmSettings().c_grid],
    "SVM C candidates, chosen by CV inside the training folds")
_INNER_FOLDS = flags.DEFINE_integer(
    "inner_folds", transfer.SvmSettings().inner_folds,
    "inner CV splits when training clips have no official folds (DCASE)")
_SVM_SOLVER = flags.DEFINE_enum(
    "svm_solver", transfer.SvmSettings().solver, list(transfer.SOLVERS),
    "gram: libsvm on the Gram matrix of the training sub-clips (fastest "
    "while it fits in memory); primal: Newton on the primal with a "
    "certified duality gap, no Gram matrix (memory linear in the "
    "sub-clips); auto: gram when its matrix fits in half the memory "
    "available, else primal (each round's record says which)")
_SVM_SELECTION = flags.DEFINE_enum(
    "svm_selection", None, list(transfer.SELECTIONS),
    "how the SVMs' C is chosen inside the training folds: inner_cv (leave "
    "each training fold out: the paper's ESC-50 protocol) or "
    "validation_fold (the fold before the test fold: OpenL3's rule, as its "
    "MLP); default: the dataset's (validation_fold for urbansound8k, "
    "inner_cv otherwise)")
_MAX_CLIPS = flags.DEFINE_integer(
    "max_clips_per_split", None, "use only the first N clips of each split "
    "(a subset; recorded as such)")
_NO_CACHE = flags.DEFINE_bool("no_feature_cache", False,
                              "neither read nor write cached features")
_RECORD = flags.DEFINE_string("record", None,
                              "also write a report record to this JSON path")
_CLASSIFIER = flags.DEFINE_enum(
    "classifier", "svm", ["svm", "mlp"], "svm: the paper's linear SVMs; "
    "mlp: OpenL3's downstream MLP (--mlp_config)")
_MLP_CONFIG = flags.DEFINE_enum(
    "mlp_config", "openl3", list(configs.MLP_NAMES),
    "the MLP's schedule, experiments/configs/mlp_<name>.py")
_FOLDS = flags.DEFINE_list(
    "folds", None, "only these folds, e.g. 1,2,10 (a quick run, recorded as "
    "a subset)")
_MODE = flags.DEFINE_enum(
    "mode", "svm", ["svm", "finetune"], "svm: linear SVMs on frozen "
    "features (the paper); finetune: also fine-tune the audio tower plus a "
    "linear classifier on the same folds (l3_tf/evaluation/finetune.py), reported "
    "beside the SVM figure")
_FT_LEARNING_RATE = flags.DEFINE_float(
    "finetune_learning_rate", finetune.FinetuneSettings().learning_rate,
    "finetune: Adam learning rate")
_FT_EPOCHS = flags.DEFINE_integer(
    "finetune_epochs", finetune.FinetuneSettings().epochs,
    "finetune: epochs per round")
_FT_BATCH = flags.DEFINE_integer(
    "finetune_batch_size", finetune.FinetuneSettings().batch_size,
    "finetune: windows per step")
_FT_FREEZE_BN = flags.DEFINE_bool(
    "finetune_freeze_batch_norm",
    finetune.FinetuneSettings().freeze_batch_norm,
    "finetune: keep the tower's BN statistics and parameters fixed")


def _finetune(builder, spec, folds) -> dict:
  """The fine-tuning protocol of --mode=finetune, on the SVM's folds."""
  try:
    config, avc, description = workdir_lib.load_network(
        _WEIGHTS.value, configs.get_config(_RANDOM_CONFIG.value), _SEED.value)
    settings = finetune.FinetuneSettings(
        learning_rate=_FT_LEARNING_RATE.value, epochs=_FT_EPOCHS.value,
        batch_size=_FT_BATCH.value, freeze_batch_norm=_FT_FREEZE_BN.value,
        seed=_SEED.value)
  except (ValueError, FileNotFoundError) as e:
    raise SystemExit(f"error: --mode=finetune: {e} (fine-tuning needs "
                     "'random' or a training workdir)") from None
  windows, data = finetune.dataset_windows(
      builder, spec, config.audio, _HOP.value, _MAX_CLIPS.value, folds)
  test_folds = [list(f) for f in spec.test_folds] if spec.test_folds else None
  try:
    results = finetune.cross_validate(avc, config, windows, data, settings,
                                      test_folds)
  except train.TrainingDiverged as e:
    raise SystemExit(f"error: --mode=finetune: {e}") from None
  except train.TrainingInterrupted as e:  # rounds are not resumed
    logging.warning("%s; fine-tuning starts its rounds again", e)
    raise SystemExit(143) from None
  results["weights"] = description
  logging.info("fine-tuned: mean accuracy %.3f", results["mean_accuracy"])
  return results


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  env = records.environment()
  started = time.perf_counter()
  spec = audio_transfer.dataset_spec(_DATASET.value)
  data_dir = _DATA_DIR.value or os.path.join(_CACHE_DIR.value, "tfds")
  try:
    # The weights first: a broken model (finite.NonFiniteError) fails
    # before a dataset is built.
    weights = transfer_features.load_weights(
        _WEIGHTS.value, configs.get_config(_RANDOM_CONFIG.value), _SEED.value,
        _DTYPE.value)
    builder = audio_transfer.prepare_dataset(spec.name, data_dir,
                                             _MANUAL_DIR.value)
    if _CLASSIFIER.value == "svm":
      settings = transfer.SvmSettings(
          c_grid=tuple(float(c) for c in _C_GRID.value),
          inner_folds=_INNER_FOLDS.value, solver=_SVM_SOLVER.value,
          selection=_SVM_SELECTION.value or spec.svm_selection)
    else:
      settings = dataclasses.replace(configs.get_mlp_config(_MLP_CONFIG.value),
                                     seed=_SEED.value)
    folds = ([int(f) for f in _FOLDS.value] if _FOLDS.value is not None
             else None)
    audio_transfer.fold_splits(builder, spec, folds)  # checked before the net
  except (ValueError, FileNotFoundError) as e:
    raise SystemExit(f"error: {e}") from None
  cache = (None if _NO_CACHE.value else transfer_features.FeatureCache(
      os.path.join(_CACHE_DIR.value, "features")))
  try:
    results = audio_transfer.run(weights, builder, spec, _HOP.value,
                                 settings, cache,
                                 max_clips_per_split=_MAX_CLIPS.value,
                                 folds=folds)
  except (ValueError, MemoryError) as e:  # a leaking recording, a huge Gram
    raise SystemExit(f"error: {e}") from None
  if _MODE.value == "finetune":
    results["finetune"] = _finetune(builder, spec, folds)
  command = records.command("experiments.audio_transfer")
  results["command"] = command
  results["environment"] = records.note_end(env)
  results["timing"]["run_seconds"] = time.perf_counter() - started
  paths = transfer.write_results(
      results, _OUTPUT_DIR.value,
      title=f"{spec.name}"
            f"{' (generated data)' if results['folds']['generated'] else ''}"
            f", {weights.description}, {results['classifier']}: "
            f"mean accuracy {results['mean_accuracy']:.3f}")
  logging.info("wrote %s", paths)
  if _RECORD.value:
    records.write_record(audio_transfer.make_record(results, weights, env),
                         _RECORD.value)
    logging.info("wrote the record %s", _RECORD.value)
  summary = {k: results[k] for k in ("mean_accuracy", "fold_accuracies",
                                     "std", "classifier")}
  summary["generated"] = results["folds"]["generated"]
  summary["timing"] = results["timing"]
  if "finetune" in results:
    summary["finetune"] = {k: results["finetune"][k] for k in (
        "mean_accuracy", "fold_accuracies", "std")}
  summary["from_cache"] = results["features"]["from_cache"]
  print("TRANSFER_RESULT " + json.dumps(summary))


if __name__ == "__main__":
  cli.run(main)
