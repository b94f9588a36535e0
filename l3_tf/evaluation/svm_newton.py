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
on US8K-size features: a relative gap of 0.4 after 300 passes at C = 1).
The method is the augmented Lagrangian method on the primal (Yinqiao Yan
and Qingna Li, "An efficient augmented Lagrangian method for support
vector machine", arXiv:1912.06800; the hinge's Moreau-Yosida envelope is
the Huber function, so the inner problems are smooth). With multipliers
lambda_i in [0, C] and a width h, each inner problem is the Huber-smoothed
hinge with each row's kink shifted by lambda_i h / C,

  min_w 1/2 |w|^2 + C sum_i L_h(m_i - lambda_i h / C),
  L_h(m) = 0 (m >= 1),  (1 - m)^2 / (2h) (1 - h < m < 1),  1 - m - h/2,

convex and piecewise quadratic: Newton steps (Hessian I + C/h X_S^T X_S
over the rows S inside the quadratic zone: a `[d, d]` solve, or by the
Woodbury identity an `[|S|, |S|]` one when fewer rows than dimensions are
in it) with an exact line search (along a step the objective is piecewise
quadratic in the step's length) solve it in a few steps once S
is found. Its derivative is the next multiplier,

  lambda_i <- C clip((1 - m_i + lambda_i h / C) / h, 0, 1),

and h is halved. Plain smoothing (the previous version of this solver)
reaches the hinge's solution only as h -> 0, and its Newton steps get short
as the zone narrows (~80 damped steps per problem and C). Here the shifts
carry what each inner problem learned: the rows on the margin sit inside
their zones, and two or three inner problems of 10-20 steps reach the
tolerance. Measured on the demo weights' UrbanSound8K features of one
round (42,572 rows, 10 classes, 5 Cs, the same tol), both in one run on a
Zen 4 EPYC: 225 batched steps in 46 s against 709 in 145 s.

Every multiplier vector is a dual point: with w(alpha) = sum_i alpha_i
y_i x~_i, alpha in [0, C], the relative duality gap

  (P(w(alpha)) - D(alpha)) / P(w(alpha)),  D = sum alpha - 1/2 |w(alpha)|^2,

certifies the returned weights w(alpha): P is 1-strongly convex, so
|w - w*| <= sqrt(2 gap P). When the zone holds no more rows than
dimensions, "polished" multipliers that put its rows exactly on the margin
are certified too, and the better of the two kept. A problem stops once
the gap is <= `tol` (or the step budget ends: the gap then says how far
it is).

The P problems share the products with the rows (one `[n, d] x [d, P]`
product per step for all of them); each problem's Hessian and solve is its
own. The C values are solved in ascending order, each from the previous
solution (weights, and multipliers scaled by the ratio of the Cs).
Everything is float64: the objective is a sum over ~48k rows, and float32
round-off stalled the line search (seen).
"""

import dataclasses
from typing import Sequence

import numpy as np

# A floor on h: with a tol the certificate cannot reach, h fell to 0 and
# divided by zero (seen in the tests); the step budget ends such fits.
_SMALLEST_SMOOTHING = 1e-10
# h of the first inner problem at each C (margin units), and its factor
# after each. On the UrbanSound8K features of the module docstring (10
# classes, 5 Cs; measured with a prototype of this module whose knobs were
# these): 0.3 then halved, 225 batched steps; a constant 0.3, 264;
# a constant 0.1, 289; 0.1 then halved, 311 (the previous solver: 709).
# They set the speed, never the certificate.
_FIRST_SMOOTHING = 0.3
_SMOOTHING_FACTOR = 0.5
# An inner problem ends when the Newton decrement falls below this
# fraction of its objective (1e-6 stalled the multipliers at C = 1 in the
# prototype: one class took its 300 steps).
_INNER_DECREMENT = 1e-9


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


def _share(margins: np.ndarray, h: float) -> np.ndarray:
  """-L_h'(m) in [0, 1]: each row's dual variable over C."""
  return np.clip((1 - margins) / h, 0.0, 1.0)


def _zone(margins: np.ndarray, h: float) -> np.ndarray:
  """`[n]` bool: the rows inside the quadratic zone of L_h."""
  return (margins > 1 - h) & (margins < 1)


def _newton_direction(x: np.ndarray, margins: np.ndarray,
                      gradient: np.ndarray, c: float, h: float) -> np.ndarray:
  """The Newton step `[d]` of one problem: (I + C/h X_S^T X_S)^-1 (-g),
  by the `[|S|, |S|]` system of the Woodbury identity when fewer rows than
  dimensions are inside the zone S (near the solution: the rows on the
  margin), else by the `[d, d]` one."""
  rows = x[_zone(margins, h)]  # [|S|, d]
  if len(rows) < x.shape[1]:
    # (I + a R^T R)^-1 g = g - R^T (I / a + R R^T)^-1 R g,  a = C / h.
    small = rows @ rows.T  # [|S|, |S|]
    small[np.diag_indices_from(small)] += h / c
    try:
      return -(gradient - rows.T @ np.linalg.solve(small, rows @ gradient))
    except np.linalg.LinAlgError:  # h / C below round-off: the [d, d] form
      pass
  hessian = (c / h) * (rows.T @ rows)  # [d, d], eigenvalues >= 1
  hessian[np.diag_indices_from(hessian)] += 1.0
  # numpy's LU, not scipy's Cholesky: scipy's own BLAS threads fought
  # numpy's here (17 ms a solve against 7).
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
  inside = _zone(margins, h)  # [n]
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


def _slope(w, direction, margins, margin_step, c, h, t):
  """d/dt of the objective at w + t direction (margins move linearly)."""
  share = _share(margins + t * margin_step, h)  # [n]
  return (float(w @ direction) + t * float(direction @ direction)
          - c * float(share @ margin_step))


def _exact_step(w, direction, margins, margin_step, c, h) -> float:
  """The step length t >= 0 minimising the objective along `direction`.

  Along a line the objective is piecewise quadratic: its slope is
  piecewise linear in t, bending where a row's margin enters or leaves the
  zone. The bends before the root are sorted and the slope followed
  through them; the root is then exact up to round-off."""
  slope0 = _slope(w, direction, margins, margin_step, c, h, 0.0)
  if slope0 >= 0:
    return 0.0
  reach = 1.0  # a length past the root: the slope is >= 0 there
  while _slope(w, direction, margins, margin_step, c, h, reach) < 0:
    reach *= 2
  m, dm = margins, margin_step
  with np.errstate(divide="ignore", invalid="ignore"):
    to_low = (1 - h - m) / dm  # where a margin crosses 1 - h
    to_one = (1 - m) / dm  # where it crosses 1
  rising, falling = dm > 0, dm < 0
  below, above = m <= 1 - h, m >= 1
  curvature = c / h * np.square(dm)  # a zone row's share of the slope's slope
  # Entering the zone adds its curvature, leaving takes it away.
  times = np.concatenate([to_low[rising & below], to_one[rising & ~above],
                          to_one[falling & above], to_low[falling & ~below]])
  bends = np.concatenate([curvature[rising & below],
                          -curvature[rising & ~above],
                          curvature[falling & above],
                          -curvature[falling & ~below]])
  keep = (times >= 0) & (times < reach)
  order = np.argsort(times[keep])
  times, bends = times[keep][order], bends[keep][order]
  zone = _zone(m, h)
  curvatures = (float(direction @ direction)
                + c / h * float(np.square(dm[zone]).sum())
                + np.concatenate([[0.0], np.cumsum(bends)]))  # per piece
  starts = np.concatenate([[0.0], times])  # [k + 1]
  slopes = slope0 + np.concatenate(
      [[0.0], np.cumsum(curvatures[:-1] * np.diff(starts))])  # at starts
  rising_past = np.flatnonzero(slopes >= 0)  # slopes rise: the root lies in
  piece = (rising_past[0] if rising_past.size else len(slopes)) - 1  # this
  return float(starts[piece] - slopes[piece] / curvatures[piece])


def _line_search(w, direction, margins, margin_step, c, h
                 ) -> tuple[float, float]:
  """(step length, objective there): the exact step, halved while
  round-off makes it raise the objective (0 when no decrease is left)."""
  start = _objective(w, margins, c, h)
  t = _exact_step(w, direction, margins, margin_step, c, h)
  while t > 1e-10:
    objective = _objective(w + t * direction, margins + t * margin_step, c, h)
    if objective <= start:
      return t, objective
    t *= 0.5
  return 0.0, start


def solve_path(x: np.ndarray, signs: np.ndarray, c_values: Sequence[float],
               tol: float, max_steps: int, start: np.ndarray | None = None
               ) -> dict[float, PathPoint]:
  """The P problems' certified solutions at every C (ascending order).

  Args:
    x: `[n, d]` rows, the constant feature included.
    signs: `[n, P]` +-1: each problem's labels; every column has both.
    c_values: the Cs.
    tol: relative duality gap at which a problem is solved.
    max_steps: Newton steps allowed for each problem at each C; a problem
      still above `tol` then is returned with its certified gap.
    start: `[d, P]` weights to start the smallest C from (zeros if None):
      only the speed depends on it, the certificate does not.

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
  if start is None:
    w = np.zeros((x.shape[1], num_problems))  # [d, P]
  elif np.shape(start) != (x.shape[1], num_problems):
    raise ValueError(f"start of shape {np.shape(start)}: expected "
                     f"{(x.shape[1], num_problems)}")
  else:
    w = np.array(start, np.float64)
  multipliers = np.zeros_like(signs)  # [n, P] lambda
  points = {}
  previous_c = None
  for c in sorted(float(c) for c in c_values):
    if previous_c is not None:  # rows at the bound stay there
      multipliers = np.minimum(multipliers * (c / previous_c), c)
    previous_c = c
    margins_now = (x @ w) * signs  # [n, P], kept current step by step
    weights = np.zeros_like(w)
    gaps = np.full(num_problems, np.inf)
    smoothing = np.full(num_problems, _FIRST_SMOOTHING)  # h of each problem
    steps_left = np.full(num_problems, max_steps)
    todo = np.arange(num_problems)
    steps = 0
    while todo.size:
      # The inner problems' margins: each row's kink shifted.
      margins = (margins_now[:, todo]
                 - multipliers[:, todo] * (smoothing[todo] / c))  # [n, t]
      share = _share(margins, smoothing[todo])  # [n, t] alpha / C
      gradient = w[:, todo] - c * (x.T @ (share * signs[:, todo]))  # [d, t]
      direction = np.stack([
          _newton_direction(x, margins[:, j], gradient[:, j], c,
                            smoothing[p]) for j, p in enumerate(todo)],
                           axis=1)  # [d, t]
      margin_step = (x @ direction) * signs[:, todo]  # [n, t]
      inner_done, polish_now = [], []
      for j, p in enumerate(todo):
        t, objective = _line_search(w[:, p], direction[:, j], margins[:, j],
                                    margin_step[:, j], c, smoothing[p])
        w[:, p] += t * direction[:, j]
        margins[:, j] += t * margin_step[:, j]
        margins_now[:, p] += t * margin_step[:, j]
        steps_left[p] -= 1
        # The Newton decrement: what the quadratic model still promised.
        decrement = -float(gradient[:, j] @ direction[:, j])
        if (decrement <= _INNER_DECREMENT * objective or t == 0.0
            or steps_left[p] == 0):
          inner_done.append(j)
        elif abs(t - 1.0) < 1e-6:  # the model's minimum: the partition may
          polish_now.append(j)  # be the solution's
      steps += 1
      candidates = []  # (column of todo, alpha [n])
      for j in inner_done:  # the next multipliers, a dual point
        p = todo[j]
        multipliers[:, p] = c * _share(margins[:, j], smoothing[p])
        candidates.append((j, multipliers[:, p].copy()))
      for j in inner_done + polish_now:
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
        ended = todo[inner_done]
        smoothing[ended] = np.maximum(smoothing[ended] * _SMOOTHING_FACTOR,
                                      _SMALLEST_SMOOTHING)
        finished = problems[(gaps[problems] <= tol) |
                            (steps_left[problems] == 0)]
        todo = np.setdiff1d(todo, finished)
    points[c] = PathPoint(weights=weights, relative_gaps=gaps, steps=steps)
  return points
