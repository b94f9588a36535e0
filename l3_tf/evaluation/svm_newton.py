"""Hinge-loss linear SVMs without a Gram matrix: Newton on the primal.

The solver of `svm_solvers`' "primal" path (UrbanSound8K's ~48k training
sub-clips, whose Gram matrix would take 26 GiB). For P binary problems on
the same rows x_i (the classes of a one-vs-all SVM) and a C it solves

  min_w P(w) = 1/2 |w|^2 + C sum_i max(0, 1 - m_i),   m_i = y_i w.x~_i,

x~_i = [x_i, s]: the bias is the weight of a constant feature s, penalised
by b^2 / (2 s^2) (as in liblinear; the Gram path leaves it free).

With far more rows than dimensions (n ~ 48k, d ~ 769) the primal is the
small problem, and dual coordinate descent (liblinear's method) needs
thousands of passes once C is large (measured with a batched version of it
on US8K-size features: a relative gap of 0.4 after 300 passes at C = 1). Following Chapelle ("Training a support
vector machine in the primal", Neural Computation 2007), the hinge is
replaced by its Huber smoothing of width h,

  L_h(m) = 0 (m >= 1),  (1 - m)^2 / (2h) (1 - h < m < 1),  1 - m - h/2,

whose objective is convex and piecewise quadratic: Newton steps (Hessian
I + C/h X_S^T X_S over the rows S inside the quadratic zone; a
`[d, d]` solve) with a backtracking line search reach its minimum in a few
steps once S is found. Its derivative gives dual variables
alpha_i = C clip((1 - m_i) / h, 0, 1) in [0, C]; with w(alpha) =
sum_i alpha_i y_i x~_i the relative duality gap

  (P(w(alpha)) - D(alpha)) / P(w(alpha)),  D = sum alpha - 1/2 |w(alpha)|^2,

certifies the returned weights w(alpha): P is 1-strongly convex, so
|w - w*| <= sqrt(2 gap). The gap shrinks with h; h is lowered until the gap
is <= `tol` (or the step budget ends: the gap then says how far it is).

The P problems share the products with the rows (one `[n, d] x [d, P]`
product per step for all of them); each problem's Hessian and solve is its
own. The C values are solved in ascending order, each from the previous
solution. Everything is float64: the objective is a sum over ~48k rows, and
float32 round-off stalls the line search (seen).
"""

import dataclasses
from typing import Sequence

import numpy as np

# A floor on h: with a tol the certificate cannot reach, h fell to 0 and
# divided by zero (seen in the tests); the step budget ends such fits.
_SMALLEST_SMOOTHING = 1e-10


@dataclasses.dataclass
class PathPoint:
  """The solution of the P problems at one C.

  Attributes:
    weights: float64 `[d, P]` w(alpha), the last row the weight of the
      constant feature (bias = s * that weight).
    relative_gaps: `[P]` certified relative duality gap of each problem.
    steps: Newton steps spent at this C.
  """

  weights: np.ndarray
  relative_gaps: np.ndarray
  steps: int


def _smoothed_hinge(margins: np.ndarray, h: float) -> np.ndarray:
  """L_h of each margin."""
  return np.where(margins >= 1, 0.0,
                  np.where(margins > 1 - h, np.square(1 - margins) / (2 * h),
                           1 - margins - h / 2))


def _objective(w: np.ndarray, margins: np.ndarray, c: float, h: float
               ) -> float:
  return 0.5 * float(w @ w) + c * float(np.sum(_smoothed_hinge(margins, h)))


def certify(x: np.ndarray, signs: np.ndarray, alpha: np.ndarray, c: float
            ) -> tuple[np.ndarray, np.ndarray]:
  """(w(alpha) `[d, P]`, relative duality gaps `[P]`) of dual variables
  alpha `[n, P]` in [0, C]."""
  w = x.T @ (alpha * signs)  # [d, P]
  margins = (x @ w) * signs  # [n, P]
  half_norm = 0.5 * np.sum(np.square(w), axis=0)  # [P]
  primal = half_norm + c * np.sum(np.maximum(0.0, 1.0 - margins), axis=0)
  dual = np.sum(alpha, axis=0) - half_norm
  return w, (primal - dual) / primal


def _newton_direction(x: np.ndarray, margins: np.ndarray,
                      gradient: np.ndarray, c: float, h: float) -> np.ndarray:
  """The Newton step `[d]` of one problem: (I + C/h X_S^T X_S)^-1 (-g),
  by the `[|S|, |S|]` system of the Woodbury identity when fewer rows than
  dimensions are inside the zone S (near the solution: the rows on the
  margin), else by the `[d, d]` one."""
  rows = x[(margins > 1 - h) & (margins < 1)]  # [|S|, d]
  if len(rows) < x.shape[1]:
    # (I + a R^T R)^-1 g = g - R^T (I / a + R R^T)^-1 R g,  a = C / h.
    small = rows @ rows.T  # [|S|, |S|]
    small[np.diag_indices_from(small)] += h / c
    return -(gradient - rows.T @ np.linalg.solve(small, rows @ gradient))
  hessian = (c / h) * (rows.T @ rows)  # [d, d]
  hessian[np.diag_indices_from(hessian)] += 1.0
  return np.linalg.solve(hessian, -gradient)


def _polished_alpha(x: np.ndarray, signs: np.ndarray, margins: np.ndarray,
                    c: float, h: float) -> np.ndarray:
  """Dual variables `[n]` of one problem from the partition of the rows by
  a smoothed solution: alpha = C below the zone, 0 above it, and inside it
  the values that put those rows exactly on the margin (y_i w.x_i = 1),
  clipped to [0, C]. When the partition is the exact solution's, this is
  the exact solution (the smoothed one is only within O(h) of it). None
  when more rows are inside the zone than dimensions (no such values).
  """
  inside = (margins > 1 - h) & (margins < 1)  # [n]
  if inside.sum() > x.shape[1]:
    return None
  alpha = np.where(margins <= 1 - h, c, 0.0)  # [n]
  if inside.any():
    rows = x[inside]  # [|S|, d]
    fixed = x.T @ (alpha * signs)  # [d]
    gram = rows @ rows.T  # [|S|, |S|]
    # A ridge far below the rows' scale: near-duplicate rows (overlapping
    # sub-clips) make the system singular.
    gram[np.diag_indices_from(gram)] += 1e-9 * np.trace(gram) / len(gram)
    beta = np.linalg.solve(gram, signs[inside] - rows @ fixed)  # alpha y
    alpha[inside] = np.clip(beta * signs[inside], 0.0, c)
  return alpha


def _line_search(w, direction, margins, margin_step, gradient, c, h):
  """Backtracking (Armijo) step length along `direction` (margins are
  linear in the step, so no product with the rows is needed)."""
  start = _objective(w, margins, c, h)
  slope = float(gradient @ direction)
  t = 1.0
  while t > 1e-10:
    if (_objective(w + t * direction, margins + t * margin_step, c, h)
        <= start + 1e-4 * t * slope):
      return t
    t *= 0.5
  return 0.0


def solve_path(x: np.ndarray, signs: np.ndarray, c_values: Sequence[float],
               tol: float, max_steps: int) -> dict[float, PathPoint]:
  """The P problems' certified solutions at every C (ascending order).

  Args:
    x: `[n, d]` rows, the constant feature included.
    signs: `[n, P]` +-1: each problem's labels; every column has both.
    c_values: the Cs.
    tol: relative duality gap at which a problem is solved.
    max_steps: Newton steps allowed for each problem at each C; a problem
      still above `tol` then is returned with its certified gap.

  Returns:
    {c: PathPoint}.
  """
  x = np.ascontiguousarray(x, np.float64)
  signs = np.ascontiguousarray(signs, np.float64)
  if x.shape[0] != signs.shape[0]:
    raise ValueError(f"{x.shape[0]} rows but {signs.shape[0]} rows of labels")
  if not np.all(np.abs(signs) == 1):
    raise ValueError("labels must be +1 or -1")
  if not (np.any(signs > 0, axis=0) & np.any(signs < 0, axis=0)).all():
    raise ValueError("every problem needs rows of both signs")
  num_problems = signs.shape[1]
  w = np.zeros((x.shape[1], num_problems))  # [d, P]
  points = {}
  for c in sorted(float(c) for c in c_values):
    weights = np.zeros_like(w)
    gaps = np.full(num_problems, np.inf)
    smoothing = np.ones(num_problems)  # h of each problem
    steps_left = np.full(num_problems, max_steps)
    todo = np.arange(num_problems)
    steps = 0
    while todo.size:
      margins = (x @ w[:, todo]) * signs[:, todo]  # [n, t]
      share = np.clip((1 - margins) / smoothing[todo], 0.0, 1.0)  # alpha / C
      gradient = w[:, todo] - c * (x.T @ (share * signs[:, todo]))  # [d, t]
      direction = np.stack([
          _newton_direction(x, margins[:, j], gradient[:, j], c,
                            smoothing[p]) for j, p in enumerate(todo)],
                           axis=1)  # [d, t]
      margin_step = (x @ direction) * signs[:, todo]  # [n, t]
      level_done, polish_now = [], []
      for j, p in enumerate(todo):
        t = _line_search(w[:, p], direction[:, j], margins[:, j],
                         margin_step[:, j], gradient[:, j], c, smoothing[p])
        w[:, p] += t * direction[:, j]
        margins[:, j] += t * margin_step[:, j]
        steps_left[p] -= 1
        # The Newton decrement: what the quadratic model still promised.
        decrement = -float(gradient[:, j] @ direction[:, j])
        objective = _objective(w[:, p], margins[:, j], c, smoothing[p])
        if (decrement <= 1e-9 * objective or t == 0.0
            or steps_left[p] == 0):
          level_done.append(j)
        elif t == 1.0:  # a full step: the partition may be the solution's
          polish_now.append(j)
      steps += 1
      candidates = []  # (column of todo, alpha [n])
      for j in level_done:
        p = todo[j]
        candidates.append((j, c * np.clip((1 - margins[:, j]) / smoothing[p],
                                          0.0, 1.0)))
      for j in level_done + polish_now:
        alpha = _polished_alpha(x, signs[:, todo[j]], margins[:, j], c,
                                smoothing[todo[j]])
        if alpha is not None:
          candidates.append((j, alpha))
      if candidates:
        columns = np.array([j for j, _ in candidates])
        problems = todo[columns]
        certified, gap = certify(x, signs[:, problems],
                                 np.stack([a for _, a in candidates], axis=1),
                                 c)
        for i, p in enumerate(problems):
          if gap[i] < gaps[p]:
            weights[:, p], gaps[p] = certified[:, i], gap[i]
        lowered = todo[level_done]
        # The gap falls with h (about as h^1.5 here): a tenth of h far from
        # tol, less close to it (a small h slows Newton down).
        smoothing[lowered] = np.maximum(smoothing[lowered] * np.clip(
            0.5 * tol / np.maximum(gaps[lowered], tol), 0.1, 0.5),
                                        _SMALLEST_SMOOTHING)
        finished = problems[(gaps[problems] <= tol) |
                            (steps_left[problems] == 0)]
        todo = np.setdiff1d(todo, finished)
    points[c] = PathPoint(weights=weights, relative_gaps=gaps, steps=steps)
  return points
