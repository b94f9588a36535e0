"""Sound-classification transfer protocol of PAPER.md §5 (scikit-learn).

Features of 1-second sub-clips (conv4_2 of the audio tower before ReLU,
max-pooled to 6144-d) -> z-scoring -> one-vs-all linear SVM -> a clip's class
scores are the mean of its sub-clips' scores -> accuracy over the dataset's
official folds.

Fold discipline is structural: `fit_classifier` receives only the training
folds' arrays (the scaler, the choice of C by inner cross-validation and the
SVMs never see anything else), and `predict_clip_scores` only applies a fitted
classifier. `cross_validate` is the only place that slices folds.

The SVMs are exact hinge-loss linear SVMs, fitted by libsvm on the Gram
matrix of the training sub-clips or, when that would not fit in memory, by
Newton on the primal without it (`l3_tf.evaluation.svm_solvers`, `svm_newton`: how each is solved,
what it costs, how "auto" chooses); the C is chosen by the same inner
cross-validation whichever solver fits (`fit_classifier`).
"""

import dataclasses
import json
import os
from typing import Any, Sequence

from absl import logging
import numpy as np
from sklearn import preprocessing

from l3_tf.evaluation import svm_solvers


SOLVERS = ("auto", "gram", "primal")
SELECTIONS = ("inner_cv", "validation_fold")


@dataclasses.dataclass(frozen=True)
class SvmSettings:
  """Classifier settings of the transfer protocol.

  Attributes:
    c_grid: candidate SVM C values; the one with the best clip accuracy on
      the held-out training clips (`selection`) is refitted on all training
      folds.
    selection: how C is chosen inside the training folds: "inner_cv"
      (leave each training fold out in turn: the paper's ESC-50 protocol)
      or "validation_fold" (OpenL3's UrbanSound8K rule, the one its MLP
      uses too: the fold before the test fold validates). Without official
      folds both draw `inner_folds` seeded stratified splits.
    inner_folds: number of inner CV splits when the training clips carry no
      official fold (otherwise: leave one training fold out).
    seed: seed of the inner split when it is drawn at random.
    num_threads: libsvm fits run at once; 0 = one per core this process may
      use. Does not change the results.
    solver: "gram" (libsvm on the Gram matrix of the training sub-clips),
      "primal" (`svm_newton`; no Gram matrix) or "auto": "gram" when its
      matrix fits in the memory budget, else "primal".
    memory_budget_bytes: what the Gram matrix may take; None = half the
      memory available when the round starts.
    primal_tol: the primal solver's certified relative duality gap.
    primal_max_iter: its Newton steps per C (fits still above the gap then
      are counted in the record, with their gaps).
    primal_intercept_scaling: its constant bias feature s: the bias's
      penalty is b^2 / (2 s^2) (the Gram path does not penalise it).
  """

  c_grid: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
  selection: str = "inner_cv"
  inner_folds: int = 4
  seed: int = 0
  num_threads: int = 0
  solver: str = "auto"
  memory_budget_bytes: int | None = None
  primal_tol: float = 1e-3
  primal_max_iter: int = 300
  primal_intercept_scaling: float = 10.0

  def fit(self, train: "SubclipFeatures", held_out: Sequence[int]
          ) -> "LinearClassifier":
    """`cross_validate`'s classifier for one round (the SVMs see only the
    training clips; `held_out`, the test folds, only names the validation
    fold of `selection="validation_fold"`)."""
    return fit_classifier(train, self, held_out)

  def __post_init__(self):
    if not self.c_grid or min(self.c_grid) <= 0:
      raise ValueError(f"c_grid={self.c_grid}: expected positive C values")
    if self.num_threads < 0:
      raise ValueError(f"num_threads={self.num_threads}: expected >= 0 "
                       "(0 = one per core)")
    if self.solver not in SOLVERS:
      raise ValueError(f"solver={self.solver!r}: expected one of {SOLVERS}")
    if self.selection not in SELECTIONS:
      raise ValueError(f"selection={self.selection!r}: expected one of "
                       f"{SELECTIONS}")
    if self.memory_budget_bytes is not None and self.memory_budget_bytes <= 0:
      raise ValueError(f"memory_budget_bytes={self.memory_budget_bytes}: "
                       "expected a positive number of bytes (or None)")
    if not (self.primal_tol > 0 and self.primal_max_iter > 0
            and self.primal_intercept_scaling > 0):
      raise ValueError(
          f"primal_tol={self.primal_tol}, primal_max_iter="
          f"{self.primal_max_iter}, primal_intercept_scaling="
          f"{self.primal_intercept_scaling}: expected positive values")

  @property
  def threads(self) -> int:
    if self.num_threads:
      return self.num_threads
    if hasattr(os, "sched_getaffinity"):
      return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclasses.dataclass
class SubclipFeatures:
  """Sub-clip features with the clip structure of a dataset.

  Attributes:
    features: float32 `[num_subclips, dim]`.
    clip_index: int `[num_subclips]`, the clip each sub-clip belongs to.
    clip_labels: int `[num_clips]` class ids.
    clip_folds: int `[num_clips]` official fold (or split id) of each clip.
    clip_ids: str `[num_clips]` stable clip names (for reports).
    class_names: the names of the class ids.
    clip_groups: int `[num_clips]` the source recording of each clip
      (UrbanSound8K's fsID; -1: unknown), or None. Clips of one recording
      must never be on both sides of a round (`fold_rounds` checks).
  """

  features: np.ndarray
  clip_index: np.ndarray
  clip_labels: np.ndarray
  clip_folds: np.ndarray
  clip_ids: np.ndarray
  class_names: Sequence[str]
  clip_groups: np.ndarray | None = None

  def __post_init__(self):
    n_sub, n_clips = len(self.features), len(self.clip_labels)
    if len(self.clip_index) != n_sub:
      raise ValueError(f"clip_index has {len(self.clip_index)} entries for "
                       f"{n_sub} sub-clips")
    if len(self.clip_folds) != n_clips or len(self.clip_ids) != n_clips:
      raise ValueError(f"{n_clips} clip labels but {len(self.clip_folds)} "
                       f"folds and {len(self.clip_ids)} ids")
    if self.clip_groups is not None and len(self.clip_groups) != n_clips:
      raise ValueError(f"{n_clips} clip labels but {len(self.clip_groups)} "
                       "clip groups")
    missing = np.setdiff1d(np.arange(n_clips), self.clip_index)
    if missing.size:
      raise ValueError(f"{missing.size} clips have no sub-clip, e.g. "
                       f"{self.clip_ids[missing[0]]!r}")

  def select_clips(self, clips: np.ndarray) -> "SubclipFeatures":
    """The sub-dataset of the given clip indices (renumbered 0..n-1)."""
    clips = np.asarray(clips)
    new_index = -np.ones(len(self.clip_labels), np.int64)
    new_index[clips] = np.arange(len(clips))
    rows = new_index[self.clip_index] >= 0
    return SubclipFeatures(
        features=self.features[rows],
        clip_index=new_index[self.clip_index[rows]],
        clip_labels=self.clip_labels[clips],
        clip_folds=self.clip_folds[clips],
        clip_ids=self.clip_ids[clips],
        class_names=self.class_names,
        clip_groups=(None if self.clip_groups is None
                     else self.clip_groups[clips]))


@dataclasses.dataclass
class LinearClassifier:
  """A fitted z-scoring + one-vs-all linear SVM: scores = z(x) @ w + b."""

  mean: np.ndarray  # [dim]
  scale: np.ndarray  # [dim]
  weights: np.ndarray  # [dim, num_classes]
  bias: np.ndarray  # [num_classes]
  c: float
  inner_cv_accuracy: dict[float, float]
  solver: str  # "gram" or "primal"
  unconverged_fits: int  # primal fits left above their duality-gap bound
  c_chosen_on: str = ""  # the held-out training clips that chose C

  def decision_function(self, features: np.ndarray) -> np.ndarray:
    z = (features - self.mean) / self.scale  # [n, dim]
    return z @ self.weights + self.bias  # [n, num_classes]

  def clip_scores(self, test: "SubclipFeatures") -> np.ndarray:
    """`[num_test_clips, num_classes]` mean sub-clip SVM scores."""
    return predict_clip_scores(self, test)

  def summary(self) -> dict[str, Any]:
    """What the round record says of the classifier."""
    return {"chosen_c": self.c,
            "inner_cv_accuracy": {str(c): a for c, a in
                                  self.inner_cv_accuracy.items()},
            "c_chosen_on": self.c_chosen_on,
            "solver": self.solver,
            "unconverged_fits": self.unconverged_fits}


def mean_per_clip(subclip_scores: np.ndarray, clip_index: np.ndarray,
                  num_clips: int) -> np.ndarray:
  """Averages `[num_subclips, k]` scores over each clip -> `[num_clips, k]`."""
  sums = np.zeros((num_clips, subclip_scores.shape[1]), np.float64)
  np.add.at(sums, clip_index, subclip_scores)
  counts = np.bincount(clip_index, minlength=num_clips)[:, None]
  return sums / np.maximum(counts, 1)


def fold_before(folds: np.ndarray, held_out: Sequence[int]) -> int:
  """The fold before the (first) test fold, cyclically over `folds` (the
  training clips' folds): OpenL3's validation fold (fold k tests, fold k-1
  validates, fold 10 for fold 1)."""
  folds = np.unique(folds)
  before = folds[folds < min(held_out)]
  return int(before.max() if before.size else folds.max())


def _inner_splits(train: SubclipFeatures, settings: SvmSettings,
                  held_out: Sequence[int] | None
                  ) -> tuple[list[np.ndarray], str]:
  """(clip-index sets, each held out once to choose C; how they were
  chosen)."""
  folds = np.unique(train.clip_folds)
  if len(folds) >= 2:
    if settings.selection == "validation_fold" and held_out is not None:
      fold = fold_before(folds, held_out)
      return [np.flatnonzero(train.clip_folds == fold)], f"fold {fold}"
    return ([np.flatnonzero(train.clip_folds == f) for f in folds],
            "each training fold in turn")
  rng = np.random.default_rng(settings.seed)
  splits = [[] for _ in range(settings.inner_folds)]
  for label in np.unique(train.clip_labels):  # stratified by class
    clips = rng.permutation(np.flatnonzero(train.clip_labels == label))
    for i, clip in enumerate(clips):
      splits[i % settings.inner_folds].append(clip)
  return ([np.array(sorted(s)) for s in splits if s],
          f"{settings.inner_folds} stratified splits")


def fit_classifier(train: SubclipFeatures,
                   settings: SvmSettings = SvmSettings(),
                   held_out: Sequence[int] | None = None) -> LinearClassifier:
  """Fits the scaler and the SVMs, choosing C inside `train` only.

  Args:
    train: the training clips' sub-clip features (nothing else).
    settings: the C grid and the choice of C.
    held_out: the round's test folds (they only name the validation fold).

  Returns:
    The classifier refitted on all of `train` with the chosen C.
  """
  num_classes = len(train.class_names)
  check_finite_features(train)
  labels = train.clip_labels[train.clip_index]  # [n_sub]
  # One solver for every fit of the round, by its largest (the refit).
  solver = svm_solvers.choose_solver(len(train.features), settings,
                         train.features.itemsize)
  if settings.solver == "auto":
    budget = svm_solvers.memory_budget(settings)
    logging.info("linear SVMs on %d sub-clips: solver %s (auto; Gram matrix "
                 "%.1f GiB, budget %s)", len(train.features), solver,
                 svm_solvers.gram_bytes(len(train.features), train.features.itemsize)
                 / 2**30, "unknown" if budget is None
                 else f"{budget / 2**30:.1f} GiB")
  unconverged = 0
  inner_accuracy = {}
  chosen_on = "the only C"
  if len(settings.c_grid) > 1:
    splits, chosen_on = _inner_splits(train, settings, held_out)
    correct = {c: 0 for c in settings.c_grid}
    last_fit = None  # (scaler, path) of the last split: the refit's start
    for held_out in splits:
      inner_train = train.select_clips(np.setdiff1d(
          np.arange(len(train.clip_labels)), held_out))
      inner_val = train.select_clips(held_out)
      scaler = preprocessing.StandardScaler().fit(inner_train.features)
      z = scaler.transform(inner_train.features)
      z_val = scaler.transform(inner_val.features)
      inner_labels = inner_train.clip_labels[inner_train.clip_index]
      path = svm_solvers.fit_path(z, inner_labels, num_classes,
                                  settings.c_grid, solver, settings)
      last_fit = scaler, path
      for c, (weights, bias, stopped) in path.items():
        unconverged += stopped
        scores = mean_per_clip(z_val @ weights + bias, inner_val.clip_index,
                               len(inner_val.clip_labels))
        correct[c] += int(np.sum(scores.argmax(1) == inner_val.clip_labels))
    total = sum(len(s) for s in splits)
    inner_accuracy = {c: correct[c] / total for c in settings.c_grid}
    # Ties go to the smaller C (the more regularised model).
    best_c = max(settings.c_grid, key=lambda c: (inner_accuracy[c], -c))
  else:
    best_c = settings.c_grid[0]
  scaler = preprocessing.StandardScaler().fit(train.features)
  z = scaler.transform(train.features)
  start = None
  if len(settings.c_grid) > 1 and solver == "primal":
    # The primal solver refits from the last split's solution at best_c,
    # moved to this scaling (only its speed depends on where it starts).
    inner_scaler, path = last_fit
    start = rescaled(*path[best_c][:2], inner_scaler, scaler)
  weights, bias, stopped = svm_solvers.fit_path(
      z, labels, num_classes, [best_c], solver, settings, start)[best_c]
  return LinearClassifier(mean=scaler.mean_, scale=scaler.scale_,
                          weights=weights, bias=bias, c=best_c,
                          inner_cv_accuracy=inner_accuracy, solver=solver,
                          unconverged_fits=unconverged + stopped,
                          c_chosen_on=chosen_on)


def rescaled(weights: np.ndarray, bias: np.ndarray, old, new
             ) -> tuple[np.ndarray, np.ndarray]:
  """The same decision function on rows z-scored by the scaler `new`
  instead of `old`: w . (x - mu_old) / s_old + b == w' . (x - mu_new) / s_new
  + b'. weights `[dim, K]`, bias `[K]`."""
  new_weights = weights * (new.scale_ / old.scale_)[:, None]
  with np.errstate(invalid="ignore"):  # classes absent from the split
    new_bias = bias + ((new.mean_ - old.mean_) / old.scale_) @ weights
  return new_weights, new_bias


def predict_clip_scores(classifier: LinearClassifier,
                        test: SubclipFeatures) -> np.ndarray:
  """`[num_test_clips, num_classes]` mean sub-clip SVM scores."""
  return mean_per_clip(classifier.decision_function(test.features),
                       test.clip_index, len(test.clip_labels))


def cross_validate(data: SubclipFeatures,
                   settings: SvmSettings = SvmSettings(),
                   test_folds: Sequence[Sequence[int]] | None = None
                   ) -> dict[str, Any]:
  """Runs the protocol over the official folds.

  Args:
    data: every clip's sub-clip features, labels and folds.
    settings: the classifier: `SvmSettings` (the paper's linear SVMs) or
      any settings whose `fit(train, held_out)` returns a classifier with
      `clip_scores(test)` and `summary()` (`transfer_mlp.MlpSettings`).
    test_folds: the fold ids tested in each round; default: each fold once
      (k-fold CV, ESC-50 / ESC-10). For a train/test dataset pass [[test_id]].

  Returns:
    A JSON-ready dict: mean_accuracy, fold_accuracies, std, per round the
    classifier's summary (SVM: chosen C, inner-CV accuracies), the confusion
    matrix (rows = true class) and the per-clip predictions.
  """
  num_classes = len(data.class_names)
  confusion = np.zeros((num_classes, num_classes), np.int64)
  rounds, predictions = [], {}
  for held_out, train, test in fold_rounds(data, test_folds):
    classifier = settings.fit(train, held_out)
    predicted = classifier.clip_scores(test).argmax(axis=1)
    np.add.at(confusion, (test.clip_labels, predicted), 1)
    for clip_id, p in zip(test.clip_ids, predicted):
      predictions[str(clip_id)] = data.class_names[p]
    rounds.append({
        "test_folds": [int(f) for f in held_out],
        "accuracy": float(np.mean(predicted == test.clip_labels)),
        "num_test_clips": int(len(test.clip_labels)),
        **classifier.summary(),
    })
  return summarize_rounds(rounds, confusion, data.class_names, settings,
                          predictions=predictions)


def fold_rounds(data, test_folds=None):
  """(held-out folds, training clips, test clips) of each round.

  `test_folds`: the folds each round holds out (default: each fold once).

  Raises:
    ValueError: a round that leaves no test or no training clip, or one
      whose training and test clips share a source recording
      (`clip_groups`): the folds would leak it.
  """
  if test_folds is None:
    test_folds = [[f] for f in np.unique(data.clip_folds).tolist()]
  for held_out in test_folds:
    is_test = np.isin(data.clip_folds, held_out)
    if not is_test.any() or is_test.all():
      raise ValueError(f"test folds {list(held_out)} leave "
                       f"{int(is_test.sum())} of {len(is_test)} clips for test")
    if data.clip_groups is not None:
      check_groups_apart(data, is_test, held_out)
    yield (held_out, data.select_clips(np.flatnonzero(~is_test)),
           data.select_clips(np.flatnonzero(is_test)))


def check_groups_apart(data: SubclipFeatures, is_test: np.ndarray,
                       held_out) -> None:
  """Raises ValueError when a source recording (clip group >= 0) has clips
  on both sides of a round, naming the recording and two of its clips."""
  groups = data.clip_groups
  shared = np.intersect1d(groups[is_test & (groups >= 0)],
                          groups[~is_test & (groups >= 0)])
  if shared.size:
    group = shared[0]
    # str(): numpy 2 would write np.str_('...') in the message.
    test_clip = str(data.clip_ids[np.flatnonzero(is_test & (groups == group))[0]])
    train_clip = str(data.clip_ids[np.flatnonzero(~is_test &
                                                  (groups == group))[0]])
    train_fold = data.clip_folds[list(data.clip_ids).index(train_clip)]
    raise ValueError(
        f"source recording {group} (and {shared.size - 1} more) has clips in "
        f"the test folds {list(held_out)} ({test_clip!r}) and in training "
        f"fold {train_fold} ({train_clip!r}): the folds leak it across "
        "training and test (UrbanSound8K's official folds never do)")


def summarize_rounds(rounds: list[dict], confusion: np.ndarray,
                     class_names, settings, **extra) -> dict:
  """The result record of a cross-validation (SVM or fine-tuning): mean and
  spread of the rounds' clip accuracies, the confusion matrix, settings."""
  accuracies = [r["accuracy"] for r in rounds]
  return {
      "mean_accuracy": float(np.mean(accuracies)),
      "fold_accuracies": accuracies,
      "std": float(np.std(accuracies)),
      "rounds": rounds,
      "confusion_matrix": confusion.tolist(),
      "class_names": list(class_names),
      **extra,
      "settings": dataclasses.asdict(settings),
  }


def write_results(results: dict[str, Any], output_dir: str,
                  title: str = "") -> dict[str, str]:
  """Writes results.json and confusion_matrix.png; returns their paths."""
  import matplotlib
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt

  os.makedirs(output_dir, exist_ok=True)
  json_path = os.path.join(output_dir, "results.json")
  with open(json_path, "w") as f:
    json.dump(results, f, indent=2, sort_keys=True)
  confusion = np.asarray(results["confusion_matrix"])
  names = results["class_names"]
  size = max(4.0, 0.45 * len(names) + 2)
  fig, ax = plt.subplots(figsize=(size, size))
  ax.imshow(confusion, cmap="Blues")
  ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
  ax.set_yticks(range(len(names)), names, fontsize=7)
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  if len(names) <= 20:
    for (i, j), count in np.ndenumerate(confusion):
      if count:
        ax.text(j, i, str(count), ha="center", va="center", fontsize=6)
  ax.set_title(title or f"mean accuracy {results['mean_accuracy']:.3f}")
  fig.tight_layout()
  png_path = os.path.join(output_dir, "confusion_matrix.png")
  fig.savefig(png_path, dpi=120)
  plt.close(fig)
  return {"results": json_path, "confusion_matrix": png_path}


def check_finite_features(train) -> None:
  """Raises ValueError naming a clip whose training features hold NaN or inf
  (both classifiers refuse them before fitting)."""
  if not np.all(np.isfinite(train.features)):
    bad = np.flatnonzero(~np.all(np.isfinite(train.features), axis=1))
    clip = str(train.clip_ids[train.clip_index[bad[0]]])  # numpy 2: no np.str_ repr
    raise ValueError(f"{bad.size} training sub-clip(s) have non-finite "
                     f"features, e.g. of clip {clip!r}")
