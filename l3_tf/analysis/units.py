"""What single units respond to: top-k examples and label purity.

A unit's activation on an example is the spatial max of its conv4_2 channel
(the value pool4 passes on). Purity of a unit = the share of its top-k
examples that carry its most frequent label. To read a purity, compare it
with the same measure after shuffling the labels (`permutation_null`).
"""

from typing import Any

import numpy as np

VISION = "vision"
AUDIO = "audio"
MODALITIES = (VISION, AUDIO)
# The networks compared: the trained one and its randomly initialised twin.
TRAINED = "trained"
RANDOM = "random"


def top_k_examples(activations: np.ndarray, k: int) -> np.ndarray:
  """`[units, k]` example indices, most activating first.

  Args:
    activations: `[num_examples, num_units]`.
    k: examples kept per unit (at most num_examples).
  """
  activations = np.asarray(activations)
  if k > activations.shape[0]:
    raise ValueError(f"k={k} but only {activations.shape[0]} examples")
  # Stable sort on the negated values: ties keep example order.
  return np.argsort(-activations, axis=0, kind="stable")[:k].T


def best_per_group(activations: np.ndarray, groups: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
  """Each group's (e.g. video's) strongest example, per unit.

  Several frames of one video are near-duplicates: ranking them separately
  would fill a unit's top-k with one video and let a label-blind unit look
  selective. Ranking groups by their best example avoids both.

  Args:
    activations: `[num_examples, num_units]`.
    groups: `[num_examples]` group keys (any hashable values).

  Returns:
    (`[num_groups, num_units]` each group's max activation, `[num_groups,
    num_units]` the index of the example reaching it), groups in order of
    first appearance.
  """
  activations = np.asarray(activations)
  groups = np.asarray(groups)
  if groups.shape != activations.shape[:1]:
    raise ValueError(f"groups of shape {groups.shape} for {activations.shape[0]}"
                     " examples; expected one group per example")
  _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
  order = np.argsort(first)  # group ids by first appearance
  rank = np.empty_like(order)
  rank[order] = np.arange(order.size)
  group_of = rank[inverse.reshape(-1)]  # [num_examples] in 0..num_groups-1
  best = np.full((order.size, activations.shape[1]), -np.inf)
  index = np.zeros((order.size, activations.shape[1]), np.int64)
  for example in range(activations.shape[0]):  # examples are few (bounded)
    g = group_of[example]
    better = activations[example] > best[g]
    best[g, better] = activations[example, better]
    index[g, better] = example
  return best.astype(activations.dtype), index


def purity(top_examples: np.ndarray, labels: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
  """(purity `[units]`, majority label `[units]`) of each unit's top-k."""
  labels = np.asarray(labels)
  top_labels = labels[top_examples]  # [units, k]
  num_labels = int(labels.max()) + 1
  counts = np.stack([np.bincount(row, minlength=num_labels)
                     for row in top_labels])  # [units, num_labels]
  return counts.max(axis=1) / top_examples.shape[1], counts.argmax(axis=1)


def relative_activations(activations: np.ndarray) -> np.ndarray:
  """Each example's activations divided by their mean over the units.

  Ranking by magnitude favours inputs that excite every unit (a bright
  colour, a loud sound): one such class can top the ranking of most units,
  which then look "selective" for it, trained or not. Relative to the
  example's mean, a unit ranks first the examples on which it stands out
  from the other units. Examples whose mean is 0 stay 0.
  """
  activations = np.asarray(activations, np.float64)
  mean = activations.mean(axis=1, keepdims=True)  # [examples, 1]
  return np.divide(activations, mean, out=np.zeros_like(activations),
                   where=mean > 0)


def dead_units(activations: np.ndarray) -> np.ndarray:
  """Units whose activation is the same on every example (no ranking)."""
  return np.ptp(np.asarray(activations), axis=0) == 0


def selectivity_summary(activations: np.ndarray, labels: np.ndarray, k: int,
                        threshold: float) -> dict[str, Any]:
  """How many units are label-selective.

  Returns:
    num_units, num_dead (constant units, counted as not selective),
    num_selective (purity >= threshold among live units),
    num_selective_labels (distinct majority labels of the selective units:
    many selective units of one class say less than a few of each class),
    mean_purity (live units), and the per-unit purities and majority labels.
  """
  activations = np.asarray(activations)
  dead = dead_units(activations)
  unit_purity, majority = purity(top_k_examples(activations, k), labels)
  live = ~dead
  selective = live & (unit_purity >= threshold)
  return {
      "num_units": int(activations.shape[1]),
      "num_dead": int(dead.sum()),
      "num_selective": int(selective.sum()),
      "num_selective_labels": len(set(majority[selective].tolist())),
      "mean_purity": float(unit_purity[live].mean()) if live.any() else 0.0,
      "k": k,
      "threshold": threshold,
      "purity": unit_purity.tolist(),
      "majority_label": majority.tolist(),
  }


def permutation_null(activations: np.ndarray, labels: np.ndarray, k: int,
                     threshold: float, repeats: int = 5,
                     seed: int = 0) -> dict[str, float]:
  """The selectivity a network would show if units ignored the labels."""
  rng = np.random.default_rng(seed)
  selective, mean_purity = [], []
  for _ in range(repeats):
    summary = selectivity_summary(activations, rng.permutation(labels), k,
                                  threshold)
    selective.append(summary["num_selective"])
    mean_purity.append(summary["mean_purity"])
  return {"num_selective": float(np.mean(selective)),
          "mean_purity": float(np.mean(mean_purity))}
