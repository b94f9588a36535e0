"""Seconds of the linear-SVM transfer protocol, before and after, in one run.

  python benchmarks/transfer.py [--sizes=esc10,esc50,us8k] [--dim=768] \
      [--sample_fits=6] [--skip_full_esc50] [--primal_classes=1]

Features are generated (class-structured Gaussian clips, sub-clips scattered
around their clip, 5 folds, `--dim` wide: 768 = the demo-width embedding)
with the clip structure of ESC-10 (400 clips, 10 classes) and ESC-50 (2,000
clips, 50 classes), 9 sub-clips per 5-second clip (hop 0.5 s). The protocol
is the full one: 5 outer folds x (4 inner folds x |C grid| + 1 refit) x one
fit per class, C chosen by inner CV, z-scored on training folds.

"before" is `l3_tf/transfer.py` as of commit `BEFORE_COMMIT`, read from git
history (`git show`), so the old code runs unchanged beside the new one.

ESC-10 size: both protocols run in full, interleaved (before, after, before,
after), and must give the same predictions. ESC-50 size: the old protocol
would take about an hour, so both implementations first time the same
sample of fits on one inner-fold Gram matrix (interleaved), which projects
the full protocol for each (the refit's larger matrices counted at the
inner size: the projection of "before" is a lower bound); then the new
protocol runs in full (`--skip_full_esc50` skips it).

UrbanSound8K size (`us8k`: 8,730 clips, 10 classes, 7 sub-clips per 4-second
clip at hop 0.5 s, 10 folds): the Gram matrix of a round's ~55k training
sub-clips does not fit (the figure printed), so the protocol runs on the
primal solver. One round's C search (8 folds, every class and C) runs on
this project's solver (`svm_newton`), then the same path by its previous
version (smoothing continuation without multipliers, `svm_newton.py` as of
commit `PREVIOUS_NEWTON_COMMIT`, read from git history), then liblinear's
fits (the primal solver before that) of `--primal_classes` classes for
every C on the same rows (0: none); the ratios of the paths and the
projected protocol (`--svm_selection=validation_fold`, 10 rounds) are
printed.

Every figure comes with the load average: other processes on the same cores
lower it.
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import importlib.util
import json
import os
import subprocess
import sys
import time
import types

from absl import app
from absl import flags
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from l3_tf.evaluation import svm_solvers  # pylint: disable=g-import-not-at-top
from l3_tf.evaluation import transfer  # pylint: disable=g-import-not-at-top

# The last commit whose l3_tf/transfer.py (l3_tf/evaluation/transfer.py since the move) copied the Gram matrix per fit.
BEFORE_COMMIT = "a86158a"
# The last commit whose svm_newton.py lowered the smoothing to 0 without
# multipliers (the augmented Lagrangian version followed it).
PREVIOUS_NEWTON_COMMIT = "93f6a5c"
# classes, clips per class, sub-clips per clip, folds
SIZES = {"esc10": (10, 40, 9, 5), "esc50": (50, 40, 9, 5),
         "us8k": (10, 873, 7, 10)}
SUBCLIPS = 9  # 5-second clips at hop 0.5 s

_SIZES = flags.DEFINE_list("sizes", ["esc10", "esc50"], "dataset sizes")
_DIM = flags.DEFINE_integer("dim", 768, "feature dimension")
_SAMPLE_FITS = flags.DEFINE_integer(
    "sample_fits", 6, "ESC-50 size: fits per C timed for the projection")
_SKIP_FULL = flags.DEFINE_bool("skip_full_esc50", False,
                               "ESC-50 size: only the projection")
_REPEATS = flags.DEFINE_integer("repeats", 2, "ESC-10 size: runs of each")
_PRIMAL_CLASSES = flags.DEFINE_integer(
    "primal_classes", 1, "UrbanSound8K size: classes whose liblinear fits "
    "are timed for each C (0: none)")


def _module_from_git(commit: str, path: str, name: str) -> types.ModuleType:
  """The file `path` as of `commit`, run as a module named `name`."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  source = subprocess.run(
      ["git", "-C", root, "show", f"{commit}:{path}"],
      capture_output=True, text=True, check=True).stdout
  spec = importlib.util.spec_from_loader(name, loader=None)
  module = importlib.util.module_from_spec(spec)
  exec(compile(source, f"{commit}:{path}", "exec"), module.__dict__)
  return module


def load_before() -> types.ModuleType:
  """`l3_tf.evaluation.transfer` as of BEFORE_COMMIT, as a module."""
  return _module_from_git(BEFORE_COMMIT, "l3_tf/transfer.py",
                          "transfer_before")


def make_features(num_classes: int, clips_per_class: int, dim: int,
                  seed: int = 0, subclips: int = SUBCLIPS,
                  num_folds: int = 5) -> transfer.SubclipFeatures:
  """Clips around class centres, sub-clips around their clip.

  Not separable: at ESC-50 size an inner-fold fit (10,800 rows) keeps
  500-700 support vectors (a separable toy would let libsvm stop early).
  ESC-10 size is easier (97% clip accuracy).
  """
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(num_classes, dim)) * 0.12  # [classes, dim]
  labels = np.repeat(np.arange(num_classes), clips_per_class)  # [clips]
  num_clips = labels.size
  clips = centres[labels] + rng.normal(size=(num_clips, dim)) * 0.5
  clip_index = np.repeat(np.arange(num_clips), subclips)  # [n_sub]
  features = clips[clip_index] + rng.normal(size=(clip_index.size, dim))
  folds = rng.permutation(np.arange(num_clips) % num_folds + 1)
  return transfer.SubclipFeatures(
      features=features.astype(np.float32), clip_index=clip_index,
      clip_labels=labels, clip_folds=folds,
      clip_ids=np.array([f"clip{i}" for i in range(num_clips)]),
      class_names=[f"class{k}" for k in range(num_classes)])


def _load() -> float:
  return round(os.getloadavg()[0], 2)


_CPU = {"seconds": 0.0}  # CPU seconds (all threads) of the last _timed call


def _timed(fn, *args):
  """(fn(*args), wall seconds); its CPU seconds go to _CPU["seconds"]."""
  start, cpu = time.perf_counter(), time.process_time()
  result = fn(*args)
  _CPU["seconds"] = time.process_time() - cpu
  return result, time.perf_counter() - start


def full_protocol(before, data, repeats: int) -> dict:
  """Both protocols in full, interleaved; they must agree."""
  times = {"before": [], "after": []}
  cpu = {"before": [], "after": []}
  results = {}
  loads = []
  for _ in range(repeats):
    for name, module in (("before", before), ("after", transfer)):
      loads.append(_load())
      results[name], seconds = _timed(module.cross_validate, data)
      times[name].append(seconds)
      cpu[name].append(_CPU["seconds"])
  same = results["before"]["predictions"] == results["after"]["predictions"]
  chosen = [[r["chosen_c"] for r in results[n]["rounds"]]
            for n in ("before", "after")]
  return {
      "before_seconds": [round(t, 1) for t in times["before"]],
      "after_seconds": [round(t, 1) for t in times["after"]],
      "speedup": round(np.median(times["before"])
                       / np.median(times["after"]), 2),
      "before_cpu_seconds": [round(t, 1) for t in cpu["before"]],
      "after_cpu_seconds": [round(t, 1) for t in cpu["after"]],
      "accuracy_before": results["before"]["mean_accuracy"],
      "accuracy_after": results["after"]["mean_accuracy"],
      "same_predictions": bool(same),
      "same_chosen_c": chosen[0] == chosen[1],
      "load_averages": loads,
  }


def projection(before, data, sample_fits: int) -> dict:
  """Seconds per fit of both on one inner-fold Gram matrix -> full protocol."""
  settings = transfer.SvmSettings()
  num_classes = len(data.class_names)
  train = data.select_clips(np.flatnonzero(data.clip_folds != 1))
  inner = train.select_clips(np.flatnonzero(train.clip_folds != 2))
  z = ((inner.features - inner.features.mean(0))
       / inner.features.std(0)).astype(np.float32)  # [n, dim]
  labels = inner.clip_labels[inner.clip_index]
  classes = list(range(min(sample_fits, num_classes)))
  loads = [_load()]
  gram32, before_gram = _timed(lambda: z @ z.T)
  # Before: one fit per class and C on the float32 Gram (copied per fit).
  before_fit = before_cpu = 0.0
  for c in settings.c_grid:
    for k in classes:
      subset = np.where(labels == k, 0, num_classes)  # class k vs. the rest
      _, seconds = _timed(before._fit_one_vs_all, gram32, z, subset, 1, c)
      before_fit += seconds
      before_cpu += _CPU["seconds"]
  del gram32
  loads.append(_load())
  _, after_gram = _timed(svm_solvers.kernel_matrix, z)
  subset = np.where(np.isin(labels, classes), labels, num_classes)
  _, after_path = _timed(svm_solvers.fit_path, z, subset, len(classes),
                         settings.c_grid, "gram", settings)
  after_fit = after_path - after_gram  # fit_path builds its Gram matrix
  after_cpu = _CPU["seconds"]
  loads.append(_load())
  sampled = len(classes) * len(settings.c_grid)
  inner_fits = 5 * 4 * len(settings.c_grid) * num_classes
  refits = 5 * num_classes
  grams = 5 * 5

  def project(gram_seconds, fit_seconds):
    per_fit = fit_seconds / sampled
    return grams * gram_seconds + (inner_fits + refits) * per_fit

  before_total = project(before_gram, before_fit)
  after_total = project(after_gram, after_fit)
  return {
      "inner_fold_subclips": int(len(z)),
      "sampled_fits": sampled,
      "before_seconds_per_fit": round(before_fit / sampled, 3),
      "after_seconds_per_fit": round(after_fit / sampled, 3),
      "before_cpu_seconds_per_fit": round(before_cpu / sampled, 3),
      "after_cpu_seconds_per_fit": round(after_cpu / sampled, 3),
      "before_gram_seconds": round(before_gram, 2),
      "after_gram_seconds": round(after_gram, 2),
      "fits_in_protocol": inner_fits + refits,
      "before_projected_minutes": round(before_total / 60, 1),
      "after_projected_minutes": round(after_total / 60, 1),
      "projected_speedup": round(before_total / after_total, 2),
      "load_averages": loads,
  }


def _liblinear_fit(z, target, c, settings):
  """The former primal solver (until stop 31): liblinear's dual coordinate
  descent with its settings then (tol 1e-4, 1000 passes, bias feature 10)
  -> passes it used."""
  from sklearn import svm  # pylint: disable=g-import-not-at-top
  machine = svm.LinearSVC(loss="hinge", dual=True, C=c, tol=1e-4,
                          max_iter=1000,
                          intercept_scaling=settings.primal_intercept_scaling,
                          random_state=0)
  machine.fit(z, target)
  return int(machine.n_iter_)


def primal_projection(data, num_classes_timed: int) -> dict:
  """The primal solvers on one round's C search, in one run: this project's
  (`svm_newton`: every class of the C path at once) and the former one
  (liblinear, `num_classes_timed` classes, one fit per class and C) on the
  same rows, projected to the protocol of `--svm_selection=validation_fold`:
  10 rounds x (a C path on 8 folds + a refit on 9)."""
  settings = transfer.SvmSettings()
  folds = np.unique(data.clip_folds)
  num_classes = len(data.class_names)
  # Round 1 tests fold 1; fold 10 (before it, cyclically) chooses C.
  train = data.select_clips(np.flatnonzero(data.clip_folds != folds[0]))
  inner = train.select_clips(np.flatnonzero(train.clip_folds != folds[-1]))
  z = ((inner.features - inner.features.mean(0))
       / inner.features.std(0)).astype(np.float32)  # [n, dim]
  labels = inner.clip_labels[inner.clip_index]
  budget = svm_solvers.memory_budget(settings)
  refit_rows = len(train.features)
  result = {
      "round_training_subclips": refit_rows,
      "path_subclips": int(len(z)),
      "gram_gib_of_a_round": round(svm_solvers.gram_bytes(refit_rows) / 2**30,
                                   1),
      "memory_budget_gib": None if budget is None else round(budget / 2**30,
                                                             1),
      "auto_solver": svm_solvers.choose_solver(refit_rows, settings),
      "load_averages": [_load()],
  }
  path, ours = _timed(svm_solvers.fit_path, z, labels, num_classes,
                      settings.c_grid, "primal", settings)
  result["ours_path_seconds_all_classes"] = round(ours, 1)
  result["ours_unconverged_fits"] = int(sum(p[2] for p in path.values()))
  result["load_averages"].append(_load())
  # A refit (one C, 9 folds) counted as one C of the path, scaled by rows.
  refit = ours / len(settings.c_grid) * refit_rows / len(z)
  result["ours_projected_protocol_minutes"] = round(
      len(folds) * (ours + refit) / 60, 1)
  # The previous Newton solver on the same rows and settings.
  previous = _module_from_git(PREVIOUS_NEWTON_COMMIT,
                              "l3_tf/evaluation/svm_newton.py",
                              "svm_newton_previous")
  x = np.concatenate([z.astype(np.float64), np.full(
      (len(z), 1), settings.primal_intercept_scaling)], axis=1)
  signs = np.where(labels[:, None] == np.arange(num_classes), 1.0, -1.0)
  points, seconds = _timed(previous.solve_path, x, signs, settings.c_grid,
                           settings.primal_tol, settings.primal_max_iter)
  result["previous_newton_path_seconds_all_classes"] = round(seconds, 1)
  result["previous_newton_unconverged_fits"] = int(sum(
      np.sum(p.relative_gaps > settings.primal_tol) for p in points.values()))
  result["speedup_over_previous_newton"] = round(seconds / ours, 2)
  result["load_averages"].append(_load())
  classes = list(range(min(num_classes_timed, num_classes)))
  if not classes:
    return result
  before, passes = {}, {}
  for c in settings.c_grid:
    seconds = 0.0
    for k in classes:
      used, spent = _timed(_liblinear_fit, z, labels == k, c, settings)
      seconds += spent
      passes[str(c)] = max(passes.get(str(c), 0), used)
    before[str(c)] = round(seconds / len(classes), 2)
  result["liblinear_seconds_per_fit"] = before
  result["liblinear_passes"] = passes
  result["load_averages"].append(_load())
  liblinear_path = sum(before.values()) * num_classes
  result["liblinear_path_seconds_all_classes_projected"] = round(
      liblinear_path, 1)
  result["speedup_of_the_path"] = round(liblinear_path / ours, 1)
  return result


def main(argv):
  del argv
  cpu = "unknown"
  if os.path.exists("/proc/cpuinfo"):
    for line in open("/proc/cpuinfo"):
      if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
  threads = transfer.SvmSettings().threads
  print(f"cpu: {cpu}; cores usable: {threads}; feature dim {_DIM.value}; "
        f"before = l3_tf/evaluation/transfer.py at {BEFORE_COMMIT}")
  before = load_before()
  summary = {}
  for size in _SIZES.value:
    if size not in SIZES:
      raise app.UsageError(f"--sizes has {size!r}; expected {sorted(SIZES)}")
    num_classes, clips_per_class, subclips, num_folds = SIZES[size]
    data = make_features(num_classes, clips_per_class, _DIM.value,
                         subclips=subclips, num_folds=num_folds)
    print(f"{size} size: {len(data.clip_labels)} clips, "
          f"{len(data.features)} sub-clips, {len(data.class_names)} classes")
    if size == "esc10":
      result = full_protocol(before, data, _REPEATS.value)
    elif size == "us8k":
      result = primal_projection(data, _PRIMAL_CLASSES.value)
    else:
      result = projection(before, data, _SAMPLE_FITS.value)
      print(json.dumps(result))
      if not _SKIP_FULL.value:
        load = _load()
        results, seconds = _timed(transfer.cross_validate, data)
        result.update({"after_full_protocol_minutes": round(seconds / 60, 1),
                       "after_full_cpu_minutes": round(_CPU["seconds"] / 60,
                                                       1),
                       "after_full_accuracy": results["mean_accuracy"],
                       "after_full_load_before": load,
                       "after_full_load_after": _load()})
    summary[size] = result
    print(json.dumps({size: result}))
  print("BENCHMARK " + json.dumps(summary))


if __name__ == "__main__":
  app.run(main)
