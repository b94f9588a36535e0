"""The linear SVMs' binary solvers of the transfer protocol (`transfer`).

The SVMs are exact hinge-loss linear SVMs solved by libsvm on a precomputed
Gram matrix (X X^T): with fewer sub-clips than feature dimensions this is
several times faster than liblinear (10 one-vs-all fits on 3000 x 6144
class-structured random features, 2 loaded cores: 4.7-5.0 s against 14-20 s
for `LinearSVC`), and the bias is not penalised. The dual solution collapses
to weights W = sum_i alpha_i y_i x_i, so prediction is one matrix product.

At ESC-50 size (10-14k sub-clips per fit, 5,250 fits) the libsvm solver was
never the main cost: each `SVC.fit` copied the float32 Gram matrix to float64
and scanned it for NaNs (0.5-1 GB per fit). The Gram matrix of a fold is now
cast to float64 once, checked once (the features are checked at the door),
and the one-vs-all fits of every C of the grid run on a thread pool (libsvm
releases the GIL). The fits, and so the results, are the same as before:
same float32 Gram values, same libsvm problems; `benchmarks/transfer.py`
prints both implementations' seconds and checks that they agree.

The Gram matrix grows with the square of the training sub-clips: 26 GiB for
UrbanSound8K's ~48k. `SvmSettings.solver="primal"` solves the same hinge
loss without it, in the d-dimensional primal (`svm_newton`: an augmented
Lagrangian method whose inner problems are smoothed hinges solved by Newton
steps, every class of the C path at once, each fit certified by its duality
gap; the refit after the choice of C starts from the validation fit's
weights), memory linear in the sub-clips. Two differences from the Gram
path: the bias is penalised (it is the weight of a constant feature
of value `primal_intercept_scaling`, so the penalty is b^2 / (2 s^2); s = 10
makes it 1 % of an unpenalised weight's), and a fit stops at the relative
duality gap `primal_tol` or after `primal_max_iter` Newton steps per C (fits
still above the gap are counted in the record). It replaced liblinear
(`LinearSVC(loss="hinge")`), whose coordinate descent needed thousands of
passes at large C on these features (98 of 100 fits stopped at its
1000-pass cap at C = 1e-3, stop 29) and took no starting point along the C
path. `solver="auto"` (default)
takes the Gram matrix when it fits in the memory budget (half of what is
available, or `memory_budget_bytes`) and the primal solver otherwise, and
the record of each round says which it used. The C is chosen by the same
code whichever solver fits (`transfer.fit_classifier`).

`settings` below is a `transfer.SvmSettings` (its solver, memory budget,
and the primal solver's tolerance, step budget and bias scaling).
"""

from concurrent import futures
from typing import Sequence

import numpy as np
import sklearn
from sklearn import svm

from l3_tf.evaluation import svm_newton


def gram_bytes(num_rows: int, itemsize: int = 4) -> int:
  """Bytes of the float64 Gram matrix of `num_rows` sub-clips plus the
  product it is widened from (features of `itemsize` bytes)."""
  return num_rows ** 2 * (8 + itemsize)


def memory_budget(settings) -> int | None:
  """What a Gram matrix may take: the settings' budget, else half of the
  memory available now (None where that is unknown)."""
  if settings.memory_budget_bytes is not None:
    return settings.memory_budget_bytes
  available = _available_memory_bytes()
  return None if available is None else available // 2


def choose_solver(num_rows: int, settings,
                  itemsize: int = 4) -> str:
  """"gram" or "primal" for fits on up to `num_rows` sub-clips: the
  settings' solver, or with "auto" the Gram matrix when it fits the budget
  (and when the budget is unknown)."""
  if settings.solver != "auto":
    return settings.solver
  budget = memory_budget(settings)
  if budget is not None and gram_bytes(num_rows, itemsize) > budget:
    return "primal"
  return "gram"


def kernel_matrix(z: np.ndarray, budget_bytes: int | None = None
                  ) -> np.ndarray:
  """`[n, n]` float64 C-ordered z @ z.T, the form libsvm takes without a copy.

  The product stays in z's precision (float32 features: the Gram values the
  protocol always used); only the result is widened, once per fold, instead
  of once per `SVC.fit`.

  Args:
    z: `[n, dim]` z-scored training rows.
    budget_bytes: what the matrix may take; None = half the memory
      available now.

  Raises:
    MemoryError: the float64 matrix (and its product) would exceed the
      budget: said with n, before allocating.
  """
  needed = gram_bytes(z.shape[0], z.itemsize)
  if budget_bytes is None:
    available = _available_memory_bytes()
    budget_bytes = None if available is None else available // 2
  if budget_bytes is not None and needed > budget_bytes:
    raise MemoryError(
        f"the linear SVMs' Gram matrix of {z.shape[0]} training sub-clips "
        f"needs {needed / 2**30:.1f} GiB, more than the budget of "
        f"{budget_bytes / 2**30:.1f} GiB (half the memory available): use "
        "the primal solver (--svm_solver=primal or auto), fewer sub-clips "
        "(a larger --hop_seconds) or --classifier=mlp")
  gram = z @ z.T  # [n, n], z's dtype
  return np.ascontiguousarray(gram, dtype=np.float64)


def _available_memory_bytes() -> int | None:
  """MemAvailable of /proc/meminfo (None where there is none)."""
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return None


def _fit_binary(gram: np.ndarray, z: np.ndarray, target: np.ndarray,
                c: float) -> tuple[np.ndarray, float, bool]:
  """One libsvm fit on a float64 Gram matrix -> (weights `[dim]`, bias,
  converged: always, libsvm runs to its tolerance)."""
  # The Gram matrix comes from features checked finite in `fit_classifier`:
  # scanning its n^2 entries again on every fit cost as much as the fit.
  with sklearn.config_context(assume_finite=True):  # thread-local setting
    machine = svm.SVC(kernel="precomputed", C=c, cache_size=1000)
    machine.fit(gram, target)
  # decision = sum_i dual_i <z_i, x> + b; dual_i = alpha_i * y_i.
  return (machine.dual_coef_[0] @ z[machine.support_], machine.intercept_[0],
          True)


def fit_path(z: np.ndarray, labels: np.ndarray, num_classes: int,
             c_values: Sequence[float], solver: str, settings,
             start: tuple[np.ndarray, np.ndarray] | None = None
             ) -> dict[float, tuple[np.ndarray, np.ndarray, int]]:
  """One-vs-all SVMs for every C, all fits on the rows z `[n, dim]`.

  Args:
    z: `[n, dim]` z-scored training rows.
    labels: `[n]` class ids.
    num_classes: classes of the dataset (absent ones get a -inf bias; with
      one class in training, it gets +inf).
    c_values: SVM C values.
    solver: "gram" (libsvm fits on a thread pool of `settings.threads`) or
      "primal" (`svm_newton`, every class at once; BLAS uses the cores).
    settings: a `transfer.SvmSettings`.
    start: (weights `[dim, num_classes]`, bias `[num_classes]`) the primal
      solver starts from (non-finite columns: zeros); libsvm takes none.
      Only the speed depends on it: each fit is certified on its own.

  Returns:
    {c: (weights `[dim, num_classes]`, bias `[num_classes]`, fits left
    above the primal solver's tolerance (0 for gram))}.
  """
  present = []
  results = {}
  for c in c_values:
    results[c] = [np.zeros((z.shape[1], num_classes), np.float64),
                  np.full(num_classes, -np.inf), 0]
  for k in range(num_classes):
    has = labels == k
    if has.all():  # only one class in training: always that class
      for c in c_values:
        results[c][1][k] = np.inf
    elif has.any():
      present.append(k)
  if solver == "gram":
    done = _gram_fits(z, labels, present, c_values, settings)
  else:
    done = _primal_fits(z, labels, present, c_values, settings, start)
  for c, k, (w, b, converged) in done:
    results[c][0][:, k] = w
    results[c][1][k] = b
    results[c][2] += not converged
  return {c: tuple(r) for c, r in results.items()}


def _gram_fits(z, labels, classes, c_values, settings):
  """[(c, class, (weights, bias, True))] by libsvm on the Gram matrix."""
  gram = kernel_matrix(z, memory_budget(settings))
  jobs = [(c, k) for c in c_values for k in classes]

  def run(job):
    c, k = job
    return c, k, _fit_binary(gram, z, (labels == k).astype(np.int64), c)

  if settings.threads > 1 and len(jobs) > 1:  # libsvm releases the GIL
    with futures.ThreadPoolExecutor(min(settings.threads, len(jobs))) as pool:
      return list(pool.map(run, jobs))
  return [run(job) for job in jobs]


def _primal_fits(z, labels, classes, c_values, settings, start=None):
  """[(c, class, (weights, bias, gap <= tol))] by the augmented Lagrangian
  Newton solver on the primal (`svm_newton`), every class of the path at
  once."""
  if not classes:
    return []
  scaling = settings.primal_intercept_scaling
  x = np.concatenate([z, np.full((len(z), 1), scaling)], axis=1)  # float64
  signs = np.where(labels[:, None] == np.array(classes)[None, :], 1.0, -1.0)
  initial = None
  if start is not None:
    weights, bias = start
    initial = np.concatenate([weights[:, classes],
                              bias[None, classes] / scaling])  # [dim + 1, P]
    initial[:, ~np.isfinite(initial).all(axis=0)] = 0.0
  points = svm_newton.solve_path(x, signs, c_values, settings.primal_tol,
                                 settings.primal_max_iter, initial)
  done = []
  for c in c_values:
    point = points[float(c)]
    for j, k in enumerate(classes):
      w = point.weights[:, j]  # [dim + 1]
      done.append((c, k, (w[:-1], w[-1] * scaling,
                          bool(point.relative_gaps[j] <= settings.primal_tol))))
  return done
