"""The SVM transfer protocol: correctness, fold discipline, accuracy."""

import dataclasses

import numpy as np
import pytest
from sklearn import preprocessing
from sklearn import svm

from l3_tf.evaluation import svm_solvers
from l3_tf.evaluation import transfer


def _blobs(num_classes=4, clips_per_class=10, subclips=3, dim=20,
           separation=3.0, num_folds=5, seed=0, audit_column=False):
  """Clips whose sub-clip features scatter around a per-class centre."""
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(num_classes, dim)) * separation
  labels = np.repeat(np.arange(num_classes), clips_per_class)
  num_clips = len(labels)
  folds = np.arange(num_clips) % num_folds + 1
  clip_index = np.repeat(np.arange(num_clips), subclips)
  features = centres[labels[clip_index]] + rng.normal(
      size=(len(clip_index), dim))
  if audit_column:  # column 0 = clip index, so fitting code can be audited
    features[:, 0] = clip_index
  return transfer.SubclipFeatures(
      features=features.astype(np.float32), clip_index=clip_index,
      clip_labels=labels, clip_folds=folds,
      clip_ids=np.array([f"clip{i}" for i in range(num_clips)]),
      class_names=[f"class{k}" for k in range(num_classes)])


def _one_vs_all(z, labels, num_classes, c, solver="gram",
                settings=transfer.SvmSettings(), threads=1):
  """(weights `[dim, classes]`, bias, fits left above the gap) of one C."""
  settings = dataclasses.replace(settings, num_threads=threads)
  return svm_solvers.fit_path(z, labels, num_classes, [c], solver,
                              settings)[c]


def test_kernel_svm_equals_sklearn_linear_svc():
  data = _blobs(num_classes=2, separation=0.7, seed=3)
  z = preprocessing.StandardScaler().fit_transform(data.features[:, 1:])
  labels = data.clip_labels[data.clip_index]
  weights, bias, _ = _one_vs_all(z, labels, 2, c=0.1)
  reference = svm.SVC(kernel="linear", C=0.1).fit(z, labels == 1)
  # Both run libsvm on the same problem; they differ by its stopping
  # tolerance (tol=1e-3), not by formulation.
  np.testing.assert_allclose(z @ weights[:, 1] + bias[1],
                             reference.decision_function(z), atol=2e-3)


def test_mean_per_clip():
  scores = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0]])
  got = transfer.mean_per_clip(scores, np.array([0, 0, 1]), 2)
  np.testing.assert_allclose(got, [[2.0, 1.0], [5.0, 5.0]])


def test_protocol_far_above_chance_on_separable_features():
  results = transfer.cross_validate(_blobs(separation=1.5))
  assert len(results["fold_accuracies"]) == 5
  assert results["mean_accuracy"] > 0.9  # chance is 0.25
  confusion = np.array(results["confusion_matrix"])
  assert confusion.sum() == 40 and np.trace(confusion) >= 36


def test_protocol_at_chance_on_noise():
  data = _blobs(separation=0.0, seed=1)
  results = transfer.cross_validate(data, transfer.SvmSettings(c_grid=(1.0,)))
  assert results["mean_accuracy"] < 0.6


@pytest.mark.parametrize("selection", ["inner_cv", "validation_fold"])
def test_fold_discipline(monkeypatch, selection):
  """No test-fold sub-clip reaches the scaler or the SVMs of its round."""
  data = _blobs(audit_column=True)
  seen_by_scaler, seen_by_fit = [], []
  original_scaler_fit = preprocessing.StandardScaler.fit
  original_fit = transfer.fit_classifier

  def recording_scaler_fit(self, x, *args, **kwargs):
    seen_by_scaler.append(set(np.asarray(x)[:, 0].astype(int)))
    return original_scaler_fit(self, x, *args, **kwargs)

  def recording_fit(train, settings=transfer.SvmSettings(), held_out=None):
    seen_by_fit.append(set(train.features[:, 0].astype(int)))
    start = len(seen_by_scaler)
    classifier = original_fit(train, settings, held_out)
    for rows in seen_by_scaler[start:]:
      assert rows <= seen_by_fit[-1], "scaler saw a clip outside training"
    return classifier

  monkeypatch.setattr(preprocessing.StandardScaler, "fit",
                      recording_scaler_fit)
  monkeypatch.setattr(transfer, "fit_classifier", recording_fit)
  results = transfer.cross_validate(
      data, transfer.SvmSettings(selection=selection))
  assert len(seen_by_fit) == 5
  for fold, clips_seen in zip(range(1, 6), seen_by_fit):
    test_clips = set(np.flatnonzero(data.clip_folds == fold))
    assert clips_seen and not clips_seen & test_clips
    assert clips_seen | test_clips == set(range(len(data.clip_labels)))
  if selection == "inner_cv":
    # 4 held-out training folds x 1 scaler each, plus the refit.
    assert len(seen_by_scaler) == 5 * (4 + 1)
    assert {r["c_chosen_on"] for r in results["rounds"]} == {
        "each training fold in turn"}
    return
  # OpenL3's rule: the fold before the test fold (fold 5 for fold 1)
  # validates; its scaler sees the other 3 training folds; then the refit.
  assert len(seen_by_scaler) == 5 * (1 + 1)
  for k, round_ in enumerate(results["rounds"]):
    validation = 5 if k == 0 else k
    assert round_["c_chosen_on"] == f"fold {validation}"
    assert seen_by_scaler[2 * k] == set(np.flatnonzero(
        ~np.isin(data.clip_folds, [k + 1, validation])))


def test_inner_cv_chooses_among_grid_and_reports_it():
  results = transfer.cross_validate(
      _blobs(separation=1.0), transfer.SvmSettings(c_grid=(1e-4, 1.0)))
  for round_ in results["rounds"]:
    assert round_["chosen_c"] in (1e-4, 1.0)
    assert set(round_["inner_cv_accuracy"]) == {"0.0001", "1.0"}


def test_train_test_split_without_folds_uses_stratified_inner_cv():
  data = _blobs(num_folds=1)
  data.clip_folds[::4] = 2  # "test" split id 2, "train" id 1
  results = transfer.cross_validate(data, test_folds=[[2]])
  assert len(results["fold_accuracies"]) == 1
  assert results["mean_accuracy"] > 0.8


def test_bad_structure_is_named():
  data = _blobs()
  with pytest.raises(ValueError, match="leave 0 of 40 clips"):
    transfer.cross_validate(data, test_folds=[[9]])
  with pytest.raises(ValueError, match="no sub-clip"):
    transfer.SubclipFeatures(
        features=np.zeros((1, 3)), clip_index=np.array([0]),
        clip_labels=np.array([0, 1]), clip_folds=np.array([1, 1]),
        clip_ids=np.array(["a", "b"]), class_names=["x", "y"])


def test_write_results(tmp_path):
  results = transfer.cross_validate(_blobs(), transfer.SvmSettings(c_grid=(1.0,)))
  paths = transfer.write_results(results, str(tmp_path))
  assert (tmp_path / "results.json").stat().st_size > 0
  assert (tmp_path / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
  assert set(paths) == {"results", "confusion_matrix"}


def test_threaded_fits_give_the_serial_results():
  data = _blobs(num_classes=5, separation=0.8, seed=4)
  serial = transfer.cross_validate(
      data, transfer.SvmSettings(c_grid=(1e-3, 1.0), num_threads=1))
  threaded = transfer.cross_validate(
      data, transfer.SvmSettings(c_grid=(1e-3, 1.0), num_threads=3))
  assert threaded["predictions"] == serial["predictions"]
  assert threaded["rounds"] == [dict(r) for r in serial["rounds"]]


def _penalized_objective(z, target, weights, bias, c, scaling):
  """The primal solver's objective: the bias is the weight of a constant
  feature `scaling`, so it is penalised by b^2 / (2 scaling^2)."""
  return (_hinge_objective(z, target, weights, bias, c)
          + 0.5 * (bias / scaling) ** 2)


def test_path_equals_one_fit_per_c():
  """libsvm's fits do not depend on the path (bit for bit); the primal
  solver starts each C from the previous one, so its path and a lone fit
  are two certified solutions of one problem: within sqrt(2 gap) each of
  the optimum (1-strong convexity), gap <= tol x objective."""
  data = _blobs(num_classes=3, separation=0.8, seed=5)
  z = preprocessing.StandardScaler().fit_transform(data.features)
  labels = data.clip_labels[data.clip_index]
  gram = svm_solvers.kernel_matrix(z)
  assert gram.dtype == np.float64 and gram.flags.c_contiguous
  settings = transfer.SvmSettings()
  for solver in ("gram", "primal"):
    path = svm_solvers.fit_path(z, labels, 4, (1e-2, 1.0), solver,
                                dataclasses.replace(settings, num_threads=2))
    for c in (1e-2, 1.0):
      weights, bias, unconverged = _one_vs_all(z, labels, 4, c, solver)
      if solver == "gram":
        np.testing.assert_array_equal(path[c][0], weights)
        np.testing.assert_array_equal(path[c][1], bias)
        continue
      assert unconverged == 0 and path[c][2] == 0
      for k in range(3):
        target = (labels == k).astype(np.int64)
        bound = sum(np.sqrt(2 * settings.primal_tol * _penalized_objective(
            z, target, w[:, k], b[k], c, settings.primal_intercept_scaling))
                    for w, b in ((weights, bias), path[c][:2]))
        distance = np.linalg.norm(np.append(
            weights[:, k] - path[c][0][:, k],
            (bias[k] - path[c][1][k]) / settings.primal_intercept_scaling))
        assert distance <= bound, (c, k, distance, bound)
    assert np.all(path[1.0][1][3] == -np.inf)  # class 3 is absent


def test_bad_settings_and_features_are_named():
  with pytest.raises(ValueError, match="num_threads=-1"):
    transfer.SvmSettings(num_threads=-1)
  with pytest.raises(ValueError, match=r"c_grid=\(0.0,\)"):
    transfer.SvmSettings(c_grid=(0.0,))
  with pytest.raises(ValueError, match="solver='liblinear'"):
    transfer.SvmSettings(solver="liblinear")
  with pytest.raises(ValueError, match="memory_budget_bytes=0"):
    transfer.SvmSettings(memory_budget_bytes=0)
  with pytest.raises(ValueError, match="primal_tol=0"):
    transfer.SvmSettings(primal_tol=0)
  with pytest.raises(ValueError, match="selection='test_fold'"):
    transfer.SvmSettings(selection="test_fold")
  data = _blobs()
  data.features[7, 2] = np.nan  # clip 2 (3 sub-clips per clip)
  with pytest.raises(ValueError, match="non-finite features.*'clip2'"):
    transfer.cross_validate(data)


def test_a_recording_on_both_sides_of_a_round_is_an_error():
  data = _blobs()
  # Source recording of each clip: one per clip, so no round leaks.
  data.clip_groups = np.arange(len(data.clip_labels)) + 100
  results = transfer.cross_validate(data, transfer.SvmSettings(c_grid=(1.0,)))
  assert len(results["fold_accuracies"]) == 5
  data.clip_groups[data.clip_folds == 4] = -1  # unknown: never compared
  transfer.cross_validate(data, transfer.SvmSettings(c_grid=(1.0,)))
  # Clip 7 (fold 3) comes from the recording of clip 1 (fold 2).
  data.clip_groups[7] = data.clip_groups[1]
  with pytest.raises(ValueError, match=r"source recording 101 .* test folds "
                     r"\[2\] \('clip1'\) and in training fold 3 \('clip7'\)"):
    transfer.cross_validate(data, transfer.SvmSettings(c_grid=(1.0,)))
  with pytest.raises(ValueError, match="40 clip labels but 3 clip groups"):
    transfer.SubclipFeatures(**{**vars(data), "clip_groups": np.zeros(3)})


def test_a_gram_matrix_beyond_memory_is_refused_before_allocating(
    monkeypatch):
  monkeypatch.setattr(svm_solvers, "_available_memory_bytes", lambda: 2**30)
  z = np.zeros((10000, 4), np.float32)  # 10000^2 x 12 B = 1.1 GiB > 0.5
  with pytest.raises(MemoryError, match="Gram matrix of 10000 training "
                     "sub-clips needs 1.1 GiB.*budget of 0.5 GiB.*primal"):
    svm_solvers.kernel_matrix(z)
  with pytest.raises(MemoryError, match="budget of 0.1 GiB"):
    svm_solvers.kernel_matrix(np.zeros((4000, 4), np.float32), 2**30 // 10)
  small = np.ones((3, 2), np.float32)
  np.testing.assert_array_equal(svm_solvers.kernel_matrix(small),
                                np.full((3, 3), 2.0))


def _hinge_objective(z, target, weights, bias, c):
  """The SVM primal 1/2 |w|^2 + C sum hinge(y (w.z + b)), y = +-1, bias
  unpenalised (the problem libsvm solves)."""
  y = 2.0 * target - 1
  return 0.5 * weights @ weights + c * np.sum(
      np.maximum(0.0, 1 - y * (z @ weights + bias)))


def test_primal_and_gram_solvers_agree_within_their_duality_gaps():
  """The primal solver (no Gram matrix) and libsvm solve the same hinge
  loss. The
  primal P(w, b) is 1-strongly convex in w, so any (w, b) has
  |w - w*|^2 <= 2 (P(w, b) - P*) <= 2 (P(w, b) - D(alpha)), D the dual
  value of libsvm's feasible alphas: the two weight vectors lie within
  sqrt(2 gap_gram) + sqrt(2 gap_primal) of each other, whatever the
  solvers' stopping rules (the primal's penalised bias only raises its gap).
  A solver bug moves w by O(|w|), far outside that."""
  data = _blobs(num_classes=3, clips_per_class=20, separation=0.6, seed=6)
  z = preprocessing.StandardScaler().fit_transform(data.features)
  labels = data.clip_labels[data.clip_index]
  settings = transfer.SvmSettings(primal_tol=1e-6, primal_max_iter=100000)
  for c in (1e-2, 1.0):
    gram_w, gram_b, _ = _one_vs_all(z, labels, 3, c, "gram")
    primal_w, primal_b, stopped = _one_vs_all(z, labels, 3, c, "primal",
                                              settings)
    assert stopped == 0
    for k in range(3):
      target = (labels == k).astype(np.int64)
      machine = svm.SVC(kernel="precomputed", C=c).fit(z @ z.T, target)
      alpha = np.abs(machine.dual_coef_[0])  # alpha_i y_i -> alpha_i
      dual = alpha.sum() - 0.5 * gram_w[:, k] @ gram_w[:, k]
      gaps = [_hinge_objective(z, target, w[:, k], b[k], c) - dual
              for w, b in ((gram_w, gram_b), (primal_w, primal_b))]
      assert min(gaps) > -1e-6 * abs(dual)  # weak duality (round-off)
      bound = sum(np.sqrt(2 * max(g, 0.0)) for g in gaps)
      distance = np.linalg.norm(gram_w[:, k] - primal_w[:, k])
      assert distance <= bound, (c, k, distance, bound)
      # Not vacuous: the bound is a small part of the weights.
      assert bound < 0.1 * np.linalg.norm(gram_w[:, k]), (c, k, bound)
    # Predictions: the same class wherever the top two scores are further
    # apart than the two solvers' scores of a row can differ.
    gram_scores = z @ gram_w + gram_b
    primal_scores = z @ primal_w + primal_b
    spread = np.abs(gram_scores - primal_scores).max(axis=1)
    top2 = np.sort(gram_scores, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * spread
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(gram_scores[clear].argmax(1),
                                  primal_scores[clear].argmax(1))


def test_auto_takes_the_primal_solver_when_the_gram_matrix_exceeds_the_budget(
    monkeypatch):
  data = _blobs(num_classes=3, separation=1.5)  # 30 clips x 3 sub-clips
  # A round's refit has 72 training sub-clips (4 of 5 folds x 6 clips x 3):
  # a Gram matrix of 72^2 x (8 + 4) B = 62,208 B.
  assert svm_solvers.gram_bytes(72) == 62_208
  chosen = []
  original = svm_solvers.fit_path
  monkeypatch.setattr(svm_solvers, "fit_path", lambda *args: (
      chosen.append(args[4]), original(*args))[1])
  for budget, expected in ((62_208, "gram"), (62_207, "primal")):
    chosen.clear()
    settings = transfer.SvmSettings(c_grid=(1e-2, 1.0),
                                    memory_budget_bytes=budget)
    results = transfer.cross_validate(data, settings)
    assert {r["solver"] for r in results["rounds"]} == {expected}
    assert set(chosen) == {expected}  # inner folds and refit alike
    assert results["settings"]["solver"] == "auto"
    assert results["mean_accuracy"] > 0.9
  # Explicit choices are kept whatever the budget; "gram" beyond it fails
  # before allocating.
  results = transfer.cross_validate(data, transfer.SvmSettings(
      c_grid=(1.0,), solver="primal", memory_budget_bytes=2**40))
  assert {r["solver"] for r in results["rounds"]} == {"primal"}
  with pytest.raises(MemoryError, match="72 training sub-clips"):
    transfer.cross_validate(data, transfer.SvmSettings(
        c_grid=(1.0,), solver="gram", memory_budget_bytes=1000))


def test_rescaled_weights_keep_the_decision_function():
  """The refit's start: the same scores on rows z-scored by another
  scaler (float64: equal to round-off of sums of 8 terms)."""
  rng = np.random.default_rng(0)
  features = rng.normal(3.0, 2.0, size=(50, 8))
  old = preprocessing.StandardScaler().fit(features[:30])
  new = preprocessing.StandardScaler().fit(features)
  weights, bias = rng.normal(size=(8, 4)), rng.normal(size=4)
  bias[3] = -np.inf  # a class absent from the split stays absent
  new_weights, new_bias = transfer.rescaled(weights, bias, old, new)
  before = old.transform(features) @ weights + bias
  after = new.transform(features) @ new_weights + new_bias
  np.testing.assert_allclose(after[:, :3], before[:, :3], rtol=1e-12,
                             atol=1e-12 * np.abs(before[:, :3]).max())
  assert np.all(after[:, 3] == -np.inf)


@pytest.mark.parametrize("solver", ["primal", "gram"])
def test_the_primal_refit_starts_from_the_validation_fit(monkeypatch,
                                                          solver):
  """The refit of the primal solver gets the validation fit's solution at
  the chosen C, moved to the refit's scaling; libsvm gets none."""
  data = _blobs(num_classes=3, separation=1.5)
  calls = []
  original = svm_solvers.fit_path
  monkeypatch.setattr(svm_solvers, "fit_path", lambda *args: (
      calls.append(args), original(*args))[1])
  settings = transfer.SvmSettings(c_grid=(1e-2, 1.0), solver=solver,
                                  selection="validation_fold")
  train = data.select_clips(np.flatnonzero(data.clip_folds != 1))
  classifier = transfer.fit_classifier(train, settings, held_out=[1])
  validation, refit = calls
  start = refit[6]
  if solver == "gram":
    assert start is None
    return
  assert start is not None
  # The validation fit again (deterministic), and its scores in float64.
  weights, bias, _ = original(*validation)[classifier.c]
  inner = train.select_clips(np.flatnonzero(train.clip_folds != 5))
  inner_scaler = preprocessing.StandardScaler().fit(inner.features)
  rows = train.features.astype(np.float64)
  expected = inner_scaler.transform(rows) @ weights + bias
  np.testing.assert_allclose(
      (rows - classifier.mean) / classifier.scale @ start[0] + start[1],
      expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())
