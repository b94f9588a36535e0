"""The primal SVM solver: certified gaps, against liblinear, its budget."""

import numpy as np
import pytest
from sklearn import svm

from l3_tf.evaluation import svm_newton


def _problems(n=600, dim=12, classes=3, seed=0, scaling=10.0):
  """Rows (with the constant feature) of overlapping classes, one-vs-all
  labels `[n, classes]`."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, classes, n)
  centres = rng.normal(size=(classes, dim))
  z = centres[labels] + rng.normal(size=(n, dim))
  x = np.concatenate([z, np.full((n, 1), scaling)], axis=1)
  signs = np.where(labels[:, None] == np.arange(classes)[None], 1.0, -1.0)
  return x, signs


def _primal(x, signs, w, c):
  """`[P]` 1/2 |w|^2 + C sum hinge, in float64."""
  margins = (x @ w) * signs
  return (0.5 * np.sum(w * w, axis=0)
          + c * np.sum(np.maximum(0.0, 1 - margins), axis=0))


def test_the_path_and_lone_fits_reach_one_optimum():
  """Each C of the path starts from the previous solution; a lone fit
  starts from zero. Both are certified within tol of the optimum P*, so
  their primal values differ by at most tol x P."""
  x, signs = _problems()
  tol = 1e-6
  points = svm_newton.solve_path(x, signs, (1e-3, 1e-1, 10.0), tol=tol,
                                 max_steps=500)
  for c, point in points.items():
    assert point.relative_gaps.max() <= tol, (c, point.relative_gaps)
    lone = svm_newton.solve_path(x, signs, (c,), tol=tol, max_steps=500)[c]
    path_value = _primal(x, signs, point.weights, c)
    lone_value = _primal(x, signs, lone.weights, c)
    np.testing.assert_array_less(np.abs(path_value - lone_value),
                                 tol * np.maximum(path_value, lone_value))


def test_weights_within_the_certified_distance_of_liblinear():
  """liblinear's dual coordinate descent solves the same objective (the
  bias a constant feature: intercept_scaling). P is 1-strongly convex in w,
  so |w - w*|^2 <= 2 (P(w) - P*) <= 2 gap P(w) for ours and
  <= 2 (P(w_lib) - D) for liblinear's, D our dual value: the two lie
  within the sum of the square roots. A wrong solver is O(|w|) away."""
  x, signs = _problems(seed=1)
  scaling = x[0, -1]
  for c in (1e-2, 1.0):
    point = svm_newton.solve_path(x, signs, (c,), tol=1e-8,
                                  max_steps=500)[c]
    ours = _primal(x, signs, point.weights, c)
    dual = ours * (1 - point.relative_gaps)
    for k in range(signs.shape[1]):
      reference = svm.LinearSVC(
          loss="hinge", dual=True, C=c, tol=1e-10, max_iter=1_000_000,
          intercept_scaling=scaling, random_state=0).fit(
              x[:, :-1], signs[:, k] > 0)
      w_lib = np.append(reference.coef_[0],
                        reference.intercept_[0] / scaling)
      lib_primal = _primal(x, signs[:, k:k + 1], w_lib[:, None], c)[0]
      bound = (np.sqrt(2 * (ours[k] - dual[k]))
               + np.sqrt(2 * max(lib_primal - dual[k], 0.0)))
      distance = np.linalg.norm(point.weights[:, k] - w_lib)
      assert distance <= bound, (c, k, distance, bound)
      assert bound < 0.05 * np.linalg.norm(w_lib), (c, k, bound)


def test_the_step_budget_returns_the_certified_gap():
  """Stopped early, the solver returns weights with their (larger) gap,
  never a claim of convergence."""
  x, signs = _problems(seed=2)
  point = svm_newton.solve_path(x, signs, (1.0,), tol=1e-12,
                                max_steps=2)[1.0]
  assert point.relative_gaps.max() > 1e-12
  primal = _primal(x, signs, point.weights, 1.0)
  full = svm_newton.solve_path(x, signs, (1.0,), tol=1e-9, max_steps=500)[1.0]
  best = _primal(x, signs, full.weights, 1.0)
  # The reported gap bounds how far the early weights are from optimal.
  assert np.all(primal - best <= point.relative_gaps * primal + 1e-9 * best)


def test_a_start_changes_the_speed_only():
  """Started from another C's weights or from noise, a fit is certified
  within tol of the same optimum as from zero (primal values within
  tol x P of each other)."""
  x, signs = _problems(seed=3)
  tol = 1e-6
  rng = np.random.default_rng(0)
  other = svm_newton.solve_path(x, signs, (10.0,), tol, 500)[10.0].weights
  for c in (1e-2, 1.0):
    zero = svm_newton.solve_path(x, signs, (c,), tol, 500)[c]
    zero_value = _primal(x, signs, zero.weights, c)
    for start in (other, rng.normal(size=other.shape)):
      point = svm_newton.solve_path(x, signs, (c,), tol, 500, start)[c]
      assert point.relative_gaps.max() <= tol, (c, point.relative_gaps)
      value = _primal(x, signs, point.weights, c)
      np.testing.assert_array_less(np.abs(value - zero_value),
                                   tol * np.maximum(value, zero_value))
  # And the start is used: from the optimum, two steps certify a gap ~20x
  # smaller than from zero (seen on 4 seeds: 0.05-0.06 against 1.2-1.3).
  optimum = svm_newton.solve_path(x, signs, (1e-2,), 1e-12, 500)[1e-2].weights
  from_zero = svm_newton.solve_path(x, signs, (1e-2,), 1e-12, 2)[1e-2]
  from_optimum = svm_newton.solve_path(x, signs, (1e-2,), 1e-12, 2,
                                       optimum)[1e-2]
  assert (from_optimum.relative_gaps.max()
          < 0.5 * from_zero.relative_gaps.max())
  with pytest.raises(ValueError, match=r"start of shape \(3, 3\)"):
    svm_newton.solve_path(x, signs, (1.0,), tol, 10, np.zeros((3, 3)))


@pytest.mark.parametrize("seed", range(5))
def test_the_exact_step_minimises_along_the_line(seed):
  """The objective along a step is piecewise quadratic; the exact step is
  its minimum: no length on a fine grid does better (beyond round-off of
  a float64 sum of 200 terms, far below 1e-12 of the objective)."""
  rng = np.random.default_rng(seed)
  for _ in range(20):
    margins = rng.normal(0.8, 0.5, 200)
    margin_step = rng.normal(size=200)
    margin_step[:5] = 0.0  # rows the step leaves alone
    w, direction = rng.normal(size=6), rng.normal(size=6)
    c, h = 10 ** rng.uniform(-2, 1), 10 ** rng.uniform(-3, 0)
    if svm_newton._slope(w, direction, margins, margin_step, c, h, 0.0) > 0:
      direction, margin_step = -direction, -margin_step
    t = svm_newton._exact_step(w, direction, margins, margin_step, c, h)

    def objective(length):
      return svm_newton._objective(w + length * direction,
                                   margins + length * margin_step, c, h)

    grid = np.linspace(0.0, 4 * max(t, 1.0), 4001)
    best = min(objective(length) for length in grid)
    assert objective(t) <= best + 1e-12 * abs(best), (t, objective(t), best)


def test_bad_labels_are_refused():
  x, signs = _problems()
  with pytest.raises(ValueError, match="both signs"):
    svm_newton.solve_path(x, np.ones_like(signs), (1.0,), 1e-3, 10)
  with pytest.raises(ValueError, match=r"\+1 or -1"):
    svm_newton.solve_path(x, signs * 0.5, (1.0,), 1e-3, 10)
  with pytest.raises(ValueError, match="600 rows but 3 rows"):
    svm_newton.solve_path(x, signs[:3], (1.0,), 1e-3, 10)
