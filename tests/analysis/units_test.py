"""Unit ranking and label purity."""

import numpy as np
import pytest

from l3_tf.analysis import units


def test_top_k_orders_by_activation():
  activations = np.array([[0.1, 5.0], [0.9, 1.0], [0.5, 3.0]])
  np.testing.assert_array_equal(units.top_k_examples(activations, 2),
                                [[1, 2], [0, 2]])
  with pytest.raises(ValueError, match="k=4 but only 3"):
    units.top_k_examples(activations, 4)


def test_purity_counts_majority_label():
  top = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
  labels = np.array([2, 2, 2, 1, 0, 1, 0, 1])
  unit_purity, majority = units.purity(top, labels)
  np.testing.assert_allclose(unit_purity, [0.75, 0.5])
  assert majority[0] == 2


def test_selective_units_beat_the_permutation_null():
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(4), 50)
  selective = (labels[:, None] == np.arange(4)[None, :]) * 2.0  # 4 detectors
  noise_units = rng.normal(size=(200, 4))
  activations = np.concatenate([selective + rng.normal(size=(200, 4)) * 0.3,
                                noise_units, np.zeros((200, 1))], axis=1)
  summary = units.selectivity_summary(activations, labels, k=20, threshold=0.8)
  assert summary["num_units"] == 9 and summary["num_dead"] == 1
  assert summary["num_selective"] == 4
  assert summary["num_selective_labels"] == 4  # one detector per label
  twice = units.selectivity_summary(  # two detectors of label 0
      np.concatenate([activations, selective[:, :1]], axis=1), labels, k=20,
      threshold=0.8)
  assert twice["num_selective"] == 5 and twice["num_selective_labels"] == 4
  null = units.permutation_null(activations, labels, k=20, threshold=0.8)
  assert null["num_selective"] < 1
  assert null["mean_purity"] < summary["mean_purity"]


def test_best_per_group_keeps_each_groups_maximum():
  activations = np.array([[1.0, 0.0], [3.0, -1.0], [2.0, 5.0], [0.5, 0.5]])
  groups = np.array(["b", "b", "a", "c"])
  best, index = units.best_per_group(activations, groups)
  # Groups in order of first appearance: b, a, c.
  np.testing.assert_array_equal(best, [[3.0, 0.0], [2.0, 5.0], [0.5, 0.5]])
  np.testing.assert_array_equal(index, [[1, 0], [2, 2], [3, 3]])
  with pytest.raises(ValueError, match="one group per example"):
    units.best_per_group(activations, groups[:3])


def test_relative_activations_discount_inputs_that_excite_every_unit():
  # Example 0 is "loud": every unit fires on it more than on the others;
  # relative to its mean, unit 1 stands out on example 1 instead.
  activations = np.array([[10.0, 9.0, 11.0], [1.0, 4.0, 1.0], [0.0, 0.0, 0.0]])
  assert units.top_k_examples(activations, 1)[1, 0] == 0
  relative = units.relative_activations(activations)
  np.testing.assert_allclose(relative[1], [0.5, 2.0, 0.5])
  np.testing.assert_array_equal(relative[2], 0.0)
  assert units.top_k_examples(relative, 1)[1, 0] == 1
