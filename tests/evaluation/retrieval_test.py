"""Retrieval metrics by hand, and a tiny AVE-Net that retrieves by class."""

import math

import numpy as np
import pytest

from l3_tf.evaluation import records
from l3_tf.evaluation import report
from l3_tf.evaluation import retrieval
from tests import testing


def test_metrics_of_a_hand_ranked_gallery():
  # One query of class 0; the gallery, in order of decreasing similarity,
  # holds classes 1, 0, 1, 0.
  similarity = np.array([[4.0, 3.0, 2.0, 1.0]])
  m = retrieval.ranking_metrics(similarity, np.array([0]),
                                np.array([1, 0, 1, 0]), ks=(1, 2))
  assert m["recall@1"] == 0.0 and m["recall@2"] == 1.0
  # AP: relevant at ranks 2 and 4 -> (1/2 + 2/4) / 2.
  assert m["map"] == pytest.approx(0.5)
  # nDCG@30: (1/log2 3 + 1/log2 5) / (1 + 1/log2 3).
  assert m["ndcg@30"] == pytest.approx(
      (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3)))
  assert m["chance_recall@1"] == pytest.approx(0.5)
  # Reversing the similarities ranks the relevant ones first at rank 1, 3.
  m = retrieval.ranking_metrics(-similarity, np.array([0]),
                                np.array([1, 0, 1, 0]))
  assert m["recall@1"] == 1.0
  assert m["map"] == pytest.approx((1 + 2 / 3) / 2)


def test_exclusion_and_queries_without_relevant_items():
  labels = np.array([0, 0, 1])
  video_ids = np.array(["a", "a", "b"])
  sim = np.eye(3)  # each item most similar to itself
  own = retrieval.excluded(video_ids, same_modality=True,
                           exclude_same_video=False)
  m = retrieval.ranking_metrics(sim, labels, labels, own)
  # Item 2 (class 1) has no other item of its class: left out.
  assert m["num_queries"] == 2 and m["recall@1"] == 1.0
  same_video = retrieval.excluded(video_ids, True, exclude_same_video=True)
  assert same_video.tolist() == [[True, True, False], [True, True, False],
                                 [False, False, True]]
  m = retrieval.ranking_metrics(sim, labels, labels, same_video)
  assert m["num_queries"] == 0 and math.isnan(m["map"])
  with pytest.raises(ValueError, match=r"\(2,\) query"):
    retrieval.ranking_metrics(sim, labels[:2], labels)


def test_distances_and_cosines():
  a = np.array([[1.0, 0.0], [0.0, 2.0]])
  # |a|^2 + |b|^2 - 2 a.b in float64: within (d + 2) eps64 (|a|^2 + |b|^2)
  # of the exact square, so the root within the root of that (at 0).
  atol = math.sqrt(4 * np.finfo(np.float64).eps * 8)
  np.testing.assert_allclose(retrieval.negative_distances(a, a),
                             [[0, -math.sqrt(5)], [-math.sqrt(5), 0]],
                             atol=atol)
  np.testing.assert_allclose(retrieval.cosine_similarity(a, a), np.eye(2))


@pytest.fixture(scope="module")
def easy_avenet(tmp_path_factory):
  """A 1/16-width AVE-Net trained for 150 steps on the easy synthetic set
  (`testing.train_easy_synthetic`); ~1 min on 2 free cores."""
  return testing.train_easy_synthetic(
      str(tmp_path_factory.mktemp("easy_avenet")), steps=150,
      fusion="distance")


@pytest.mark.slow
def test_trained_avenet_retrieves_same_class_far_above_chance(easy_avenet):
  options = retrieval.RetrievalOptions(split="test", items_per_video=2)
  results = retrieval.run([easy_avenet.workdir], options, random_twins=True)
  trained, untrained = results["models"]
  assert trained["trained"] and not untrained["trained"]
  assert set(trained["methods"]) == {retrieval.SHARED, retrieval.COSINE}
  ours = trained["methods"][retrieval.SHARED]
  random = untrained["methods"][retrieval.SHARED]
  num_classes = trained["num_classes"]
  assert num_classes == 4
  for direction in ("audio_to_image", "image_to_audio"):
    chance = ours[direction]["chance_recall@1"]
    assert chance < 1 / num_classes + 0.1  # 12 test videos, 4 classes
    assert ours[direction]["recall@1"] >= chance + 0.3, (direction, ours)
    assert ours[direction]["recall@1"] > random[direction]["recall@1"] + 0.2
    assert ours[direction]["map"] > random[direction]["map"]
  # The records render as rows of the results table.
  rows = retrieval.make_records(results, "python -m experiments.retrieval",
                                env={"hardware": "test"})
  for record in rows:
    records.check_record(record, "test")
  table = report.render_table(rows)
  assert "cross-modal retrieval" in table and "AVE-Net (shared 128-d" in table
  assert "Ours random AVE-Net" in table
  assert "audio to image" in retrieval.table(results)
