"""OpenL3's MLP on frozen features: its architecture, schedule and folds."""

import keras
import numpy as np
import pytest

from experiments import configs
from l3_tf.evaluation import transfer
from l3_tf.evaluation import transfer_mlp
from l3_tf.training import compiled_check
from tests.evaluation import transfer_test

SETTINGS = configs.get_mlp_config("test")


def test_architecture_and_loss_are_openl3s():
  settings = configs.get_mlp_config("openl3")
  model = transfer_mlp.build_model(768, 10, settings)
  dense = [layer for layer in model.layers if layer.weights]
  assert [layer.units for layer in dense] == [512, 128, 10]
  assert [layer.activation.__name__ for layer in dense] == [
      "relu", "relu", "softmax"]
  # 768*512+512 + 512*128+128 + 128*10+10
  assert model.count_params() == 393728 + 65664 + 1290
  assert (settings.learning_rates, settings.weight_decays) == (
      (1e-5, 1e-4, 1e-3), (1e-5, 1e-4, 1e-3))
  assert (settings.batch_size, settings.max_epochs, settings.patience) == (
      64, 150, 20)
  # The loss is Keras's for the same model with L2(1e-4) on every kernel.
  trainer = transfer_mlp._Trainer(20, 4, SETTINGS)
  trainer.reset(SETTINGS, 1e-3, 1e-4)
  rng = np.random.default_rng(0)
  z = rng.standard_normal((8, 20)).astype(np.float32)
  labels = np.arange(8) % 4
  loss, _ = trainer.evaluate(z, labels)
  reference = transfer_mlp.build_model(20, 4, SETTINGS)
  for layer in reference.layers:
    if layer.weights:
      layer.kernel_regularizer = keras.regularizers.L2(1e-4)
  regularised = keras.Model.from_config(reference.get_config())
  regularised.set_weights(trainer.model.get_weights())
  expected = (keras.losses.SparseCategoricalCrossentropy()(
      labels, regularised(z)) + sum(regularised.losses))
  # Two evaluations of the MLP: logits l within the forward bound of their
  # norm, and -log softmax(l)_y = lse(l) - l_y moves by at most 2 ||dl||
  # (averaged over the rows); each penalty, 1e-4 x a float32 sum of N
  # squares, within (N + 2) u of its value in either; a few roundings more.
  u = np.finfo(np.float32).eps / 2
  hidden = keras.Model(regularised.input, regularised.layers[-2].output)(z)
  last = regularised.layers[-1]
  logits = np.asarray(hidden) @ last.kernel.numpy() + last.bias.numpy()
  penalty = sum(float(p) for p in regularised.losses)
  longest = max(int(np.prod(w.shape)) for w in regularised.trainable_weights)
  allowed = (2 * compiled_check.forward_bound(regularised)
             * np.linalg.norm(logits, axis=1).mean()
             + 2 * (longest + 2) * u * penalty + 8 * u * abs(float(expected)))
  assert abs(float(loss) - float(expected)) <= allowed, (loss, expected,
                                                          allowed)


def test_far_above_chance_and_seeded():
  data = transfer_test._blobs(separation=1.5)
  first = transfer.cross_validate(data, SETTINGS)
  assert first["mean_accuracy"] > 0.9  # chance 0.25
  again = transfer.cross_validate(data, SETTINGS)
  assert again["predictions"] == first["predictions"]
  assert again["fold_accuracies"] == first["fold_accuracies"]
  for round_ in first["rounds"]:
    assert round_["chosen_learning_rate"] == 1e-3
    (search,) = round_["search"].values()
    assert 1 <= search["best_epoch"] <= search["epochs_run"] <= 30


def test_at_chance_on_noise():
  data = transfer_test._blobs(separation=0.0, seed=1)
  assert transfer.cross_validate(data, SETTINGS)["mean_accuracy"] < 0.6


def test_validation_is_the_fold_before_the_test_fold(monkeypatch):
  """Each round validates on the previous fold (fold 5 for fold 1), and its
  z-scoring sees only the fitting folds (neither test nor validation)."""
  data = transfer_test._blobs(audit_column=True)
  rounds = []
  original_choice = transfer_mlp.validation_clips
  original_fit = transfer_mlp.fit_classifier

  def recording_choice(train, held_out, settings):
    valid, how = original_choice(train, held_out, settings)
    rounds.append((list(held_out), how, set(train.clip_folds[valid])))
    return valid, how

  def checking_fit(train, held_out, settings):
    classifier = original_fit(train, held_out, settings)
    assert not set(train.clip_folds) & set(held_out)
    fit_rows = ~np.isin(train.clip_folds[train.clip_index],
                        list(rounds[-1][2]))
    # Two float32 means of the same m values, summed in any order: each
    # within (m + 1) u mean |x| of the exact one.
    rows = train.features[fit_rows]
    allowed = 2 * (len(rows) + 1) * 2.0**-24 * np.abs(rows).mean(axis=0)
    assert np.all(np.abs(classifier.mean - rows.mean(axis=0)) <= allowed)
    return classifier

  monkeypatch.setattr(transfer_mlp, "validation_clips", recording_choice)
  monkeypatch.setattr(transfer_mlp, "fit_classifier", checking_fit)
  transfer.cross_validate(data, SETTINGS)
  assert rounds == [([1], "fold 5", {5}), ([2], "fold 1", {1}),
                    ([3], "fold 2", {2}), ([4], "fold 3", {3}),
                    ([5], "fold 4", {4})]


def test_train_split_without_folds_validates_on_whole_clips():
  data = transfer_test._blobs(num_folds=1, clips_per_class=20)
  train = data.select_clips(np.arange(len(data.clip_labels)))
  valid, how = transfer_mlp.validation_clips(train, [2], SETTINGS)
  assert "0.15 of the training clips" in how
  # 3 of 20 per class (round(0.15 * 20)), whole clips, all classes.
  assert np.bincount(train.clip_labels[valid]).tolist() == [3, 3, 3, 3]
  data.clip_folds[::4] = 2
  results = transfer.cross_validate(data, SETTINGS, test_folds=[[2]])
  assert results["mean_accuracy"] > 0.8


def test_bad_settings_and_features_are_named():
  with pytest.raises(ValueError, match="max_epochs=0"):
    transfer_mlp.MlpSettings(max_epochs=0)
  with pytest.raises(ValueError, match="validation_fraction=1"):
    transfer_mlp.MlpSettings(validation_fraction=1)
  with pytest.raises(ValueError, match="unknown MLP config 'big'"):
    configs.get_mlp_config("big")
  data = transfer_test._blobs()
  data.features[3, 2] = np.nan
  with pytest.raises(ValueError, match="non-finite features, e.g. of clip "
                     "'clip1'"):
    transfer.cross_validate(data, SETTINGS)
