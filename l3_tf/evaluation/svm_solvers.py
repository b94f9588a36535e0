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
loss without it: liblinear's dual coordinate descent (`LinearSVC`, one
binary problem per class and C, one at a time: liblinear draws its row
order from one process-wide generator), memory linear in the sub-clips.
Two differences from the Gram path:
liblinear penalises the bias (it is a constant feature of value
`primal_intercept_scaling`, so the penalty is b^2 / (2 s^2); s = 10 makes it
1 % of an unpenalised weight's) and it stops at `primal_tol` or
`primal_max_iter` passes (fits stopped by the cap are counted in the
record). scikit-learn's liblinear takes no starting point, so the C path is
not warm-started: each C is solved from zero. `solver="auto"` (default)
takes the Gram matrix when it fits in the memory budget (half of what is
available, or `memory_budget_bytes`) and the primal solver otherwise, and
the record of each round says which it used. The C is chosen by the same
inner cross-validation whichever solver fits (`transfer.fit_classifier`).

`settings` below is a `transfer.SvmSettings` (its solver, memory budget,
seed and liblinear's tolerance, cap and bias scaling).
"""

from typing import Callable

import numpy as np
import sklearn
from sklearn import svm


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


def _fit_binary_primal(z: np.ndarray, target: np.ndarray, c: float,
                       settings
                       ) -> tuple[np.ndarray, float, bool]:
  """One liblinear hinge-loss fit (dual coordinate descent, no Gram
  matrix) -> (weights `[dim]`, bias, converged before the iteration cap)."""
  with sklearn.config_context(assume_finite=True):  # checked at the door
    machine = svm.LinearSVC(
        loss="hinge", dual=True, C=c, tol=settings.primal_tol,
        max_iter=settings.primal_max_iter,
        intercept_scaling=settings.primal_intercept_scaling,
        random_state=settings.seed)
    machine.fit(z, target)
  return (machine.coef_[0], machine.intercept_[0],
          bool(machine.n_iter_ < settings.primal_max_iter))


BinaryFit = Callable[[np.ndarray, float], tuple[np.ndarray, float, bool]]


def binary_fitter(z: np.ndarray, solver: str, settings
                  ) -> BinaryFit:
  """fit(target `[n]` of 0/1, c) -> (weights, bias, converged) on the rows
  z `[n, dim]` by `solver` ("gram" builds the Gram matrix here, once)."""
  if solver == "gram":
    gram = kernel_matrix(z, memory_budget(settings))
    return lambda target, c: _fit_binary(gram, z, target, c)
  # liblinear works in float64: converted once, not per fit.
  z64 = np.ascontiguousarray(z, dtype=np.float64)

  def fit(target, c):
    return _fit_binary_primal(z64, target, c, settings)

  # liblinear visits the rows in an order drawn from scikit-learn's one
  # process-wide generator (seeded per fit): concurrent fits would
  # interleave their draws, and the results would depend on the thread
  # schedule. The primal fits run one at a time.
  fit.threads_safe = False
  return fit
