"""Supervised baselines and the AVC table on a tiny labelled video set."""

import dataclasses
import glob
import io
import logging
import os
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf

from experiments import configs
from l3_tf.data import input_pipeline
from l3_tf.evaluation import avc_table
from l3_tf.evaluation import baselines
from l3_tf.evaluation import records
from l3_tf.model import networks as model_lib
from l3_tf.training import compiled_check
from l3_tf.training import progress as progress_lib
from l3_tf.training import train
from l3_tf.training import workdir as workdir_lib
from tests import labelled_fake_videos
from tests import testing


@pytest.fixture(scope="module")
def config(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("labelled_videos"))
  name = labelled_fake_videos.build(data_dir)
  base = testing.tiny_config(1 / 32)
  return dataclasses.replace(
      base,
      data=dataclasses.replace(base.data, dataset=name, data_dir=data_dir,
                               group_videos=3, shuffle_videos=8,
                               eval_num_pairs=16, eval_batch_size=8),
      train=dataclasses.replace(base.train, num_steps=2,
                                checkpoint_every_steps=2, log_every_steps=1,
                                summary_images_every_steps=0))


@pytest.fixture(scope="module")
def table_column(config, tmp_path_factory):
  """L3-Net trained 2 steps, then the baselines column of the AVC table."""
  root = tmp_path_factory.mktemp("avc_table")
  l3_workdir = str(root / "l3")
  train.train_and_evaluate(config, l3_workdir)
  column = avc_table.column(l3_workdir, configs.get_baselines_config("test"),
                            str(root / "table"), split="test")
  return {"root": root, "column": column, "l3_workdir": l3_workdir}


def test_labelled_pipeline_gives_each_frame_and_window_its_video_class(config):
  dataset = input_pipeline.train_dataset(config, 5, seed=3, with_metadata=True,
                                         labelled=True)
  seen = set()
  for features, labels, metadata in dataset.take(3):
    assert features["image"].shape == (5, 224, 224, 3)
    assert features["spectrogram"].shape == (5, 257, 199, 1)
    ids = [v.decode() for v in metadata["frame_video_id"].numpy()]
    assert ids == [v.decode() for v in metadata["audio_video_id"].numpy()]
    assert labels.numpy().tolist() == [labelled_fake_videos.label_of(v)
                                       for v in ids]
    # Positives only: the frame lies inside its window.
    start = metadata["audio_start_sample"].numpy()
    frame = metadata["frame_time"].numpy().astype(np.float64) * 48000
    assert np.all((start <= frame) & (frame <= start + 48000))
    seen.update(ids)
  assert labelled_fake_videos.UNLABELLED_ID not in seen
  assert len(seen) >= 5
  a = [l.numpy().tolist() for _, l in input_pipeline.eval_dataset(
      config, "test", 7, labelled=True)]
  b = [l.numpy().tolist() for _, l in input_pipeline.eval_dataset(
      config, "test", 7, labelled=True)]
  assert a == b and sum(len(x) for x in a) == 7


def test_unlabelled_dataset_is_refused(tmp_path):
  from tests import fake_videos
  name = fake_videos.build(str(tmp_path))
  builder = input_pipeline.load_builder(name, str(tmp_path))
  with pytest.raises(input_pipeline.DatasetError, match="has no labels"):
    input_pipeline.check_labelled(builder)


def test_choose_threshold_matches_brute_force():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 2, 200)
  scores = np.round(rng.uniform(0, 1, 200) + 0.3 * labels, 2)  # with ties
  threshold, accuracy = baselines.choose_threshold(scores, labels)
  best = max(np.mean((scores > t) == labels)
             for t in np.concatenate([[-1.0], scores, [2.0]]))
  assert accuracy == pytest.approx(best)
  assert np.mean((scores > threshold) == labels) == pytest.approx(accuracy)
  assert baselines.choose_threshold(np.array([0.2, 0.8]),
                                    np.array([0, 1]))[1] == 1.0
  with pytest.raises(ValueError, match="same non-empty shape"):
    baselines.choose_threshold(np.zeros(3), np.zeros(2))


def test_direct_combination_network_decides_score_above_threshold(config):
  classifiers = baselines.supervised_networks(
      config, 3, baselines.ClassifierConfig())
  rng = np.random.default_rng(1)
  features = {"image": tf.constant(rng.uniform(-1, 1, (6, 224, 224, 3)),
                                   tf.float32),
              "spectrogram": tf.constant(rng.normal(-3, 1, (6, 257, 199, 1)),
                                         tf.float32)}
  scores = baselines.correspondence_score(classifiers, features).numpy()
  logits = classifiers(features)
  expected = np.sum(tf.nn.softmax(logits["vision"]).numpy()
                    * tf.nn.softmax(logits["audio"]).numpy(), axis=1)
  # Two evaluations of the networks: logits within the forward bound of
  # their norms; softmax's Jacobian diag(p) - p p^T has norm <= 1/2 and
  # ||p|| <= 1, so the score p_v . p_a moves by at most
  # bound / 2 (||l_v|| + ||l_a||).
  allowed = compiled_check.forward_bound(classifiers) / 2 * (
      np.linalg.norm(logits["vision"], axis=1)
      + np.linalg.norm(logits["audio"], axis=1))
  np.testing.assert_array_less(np.abs(scores - expected), allowed)
  threshold = float(np.median(scores))
  network = baselines.direct_combination_network(classifiers, threshold)
  decided = network(features).numpy().argmax(axis=1)
  np.testing.assert_array_equal(decided, (scores > threshold).astype(int))


def test_avc_table_column(table_column, config):
  column = table_column["column"]
  cells = column["cells"]
  assert set(cells) == set(baselines.METHODS)
  for method, cell in cells.items():
    assert cell is not None, method
    # The same fixed, balanced pairs for every row.
    assert (cell["split"], cell["num_pairs"], cell["num_positives"]) == (
        "test", 16, 8), method
    assert cell["dataset"] == config.data.dataset
    assert 0.0 <= cell["accuracy"] <= 1.0
  direct = cells[baselines.DIRECT_COMBINATION]
  assert direct["threshold_split"] == "validation"
  assert 0.0 <= direct["threshold"] <= 1.0
  details = column["details"]
  assert details["labelled"] and details["classifiers_step"] == 2
  assert details["num_classes"] == 3
  assert 0.0 <= details["classifiers"]["vision_accuracy"] <= 1.0
  assert cells[baselines.SUPERVISED_PRETRAINING]["step"] == 2


def test_supervised_pretraining_trains_only_the_head(table_column):
  details = table_column["column"]["details"]
  _, _, classifiers, _ = baselines.restore_classifiers(
      details["classifiers_workdir"])
  _, avc, _ = workdir_lib.restore_avc_model(
      details["supervised_pretraining_workdir"])
  vision, audio, head = model_lib.towers_of(avc)
  for got, want in zip((vision, audio), baselines.trunks_of(classifiers)):
    for a, b in zip(got.get_weights(), want.get_weights()):
      np.testing.assert_array_equal(a, b)  # frozen: BN statistics too
  # The head did train: it moved away from its seeded initial values.
  config = workdir_lib.read_config(details["supervised_pretraining_workdir"])
  keras.utils.set_random_seed(config.train.seed)
  initial = model_lib.avc_network(config.model, config.image, config.audio)
  moved = [not np.allclose(a, b) for a, b in zip(
      head.get_weights(), model_lib.towers_of(initial)[2].get_weights())]
  assert all(moved)


def test_table_files_and_records(table_column):
  column = table_column["column"]
  out = str(table_column["root"] / "table")
  paths = avc_table.write_table([column], out)
  markdown = open(paths["markdown"]).read()
  for method in baselines.METHODS:
    assert f"| {method} | " in markdown
  accuracy = column["cells"][baselines.L3_NET]["accuracy"]
  assert f"{100 * accuracy:.1f}%" in markdown
  made = avc_table.make_records(column, "python -m experiments.avc_table",
                                env={"hardware": "test"})
  assert set(made) == set(baselines.METHODS)
  for method, record in made.items():
    records.check_record(record, method)
    assert record["experiment"] == "avc"
    assert record["value"] == column["cells"][method]["accuracy"]
    assert record["scale"]["network"].startswith("narrowed x0.03125")
  assert "fusion head: 2 AVC steps" in made[
      baselines.SUPERVISED_PRETRAINING]["scale"]["training"]
  assert os.path.exists(paths["json"])


def _classifiers_schedule(num_steps: int, checkpoint_every: int):
  base = configs.get_baselines_config("test")
  return dataclasses.replace(base, classifier=dataclasses.replace(
      base.classifier, num_steps=num_steps,
      checkpoint_every_steps=checkpoint_every))


def _scalar_steps(directory: str) -> dict[str, set[int]]:
  """{tag: steps it was written at} over a summary folder's event files."""
  steps = {}
  for path in glob.glob(os.path.join(directory, "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        steps.setdefault(value.tag, set()).add(event.step)
  return steps


def test_classifiers_train_through_the_shared_loop(config, tmp_path,
                                                   monkeypatch):
  """The baselines' classifiers train through `train.train` (issue 23): a
  SIGTERM stops them after a checkpoint of the last step, a rerun resumes
  there, and the progress bar and TensorBoard show their metrics."""
  bars = []

  class RecordedBar(progress_lib.StepProgress):
    """The loop's progress bar, drawn into a buffer; SIGTERMs this process
    once the first run has finished step 2."""

    def __init__(self, total_steps, start_step, pairs_per_step, enabled=None,
                 file=None):
      del enabled, file
      self.out = io.StringIO()
      bars.append(self)
      super().__init__(total_steps, start_step, pairs_per_step, enabled=True,
                       file=self.out)

    def update(self, step, seconds, loss=None):
      super().update(step, seconds, loss)
      if step == 2 and len(bars) == 1:
        os.kill(os.getpid(), signal.SIGTERM)

  monkeypatch.setattr(progress_lib, "StepProgress", RecordedBar)
  schedule = _classifiers_schedule(num_steps=4, checkpoint_every=100)
  workdir = str(tmp_path / "classifiers")
  with pytest.raises(train.TrainingInterrupted) as stopped:
    baselines.train_classifiers(config, schedule, workdir)
  assert (stopped.value.step, stopped.value.reason) == (2, "SIGTERM")
  # Written on the way out (the period is 100 steps): step 2 exactly.
  latest = workdir_lib.latest_checkpoint(workdir)
  assert latest.endswith("ckpt-2")
  reader = tf.train.load_checkpoint(latest)
  assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 2

  result = baselines.train_classifiers(config, schedule, workdir)
  assert (result["start_step"], result["step"]) == (2, 4)
  assert result["eval"]["step"] == 4
  assert "2/4" in bars[0].out.getvalue() and "4/4" in bars[1].out.getvalue()
  # Both runs' scalars, every step (log_every_steps=1), each classifier's own.
  logged = _scalar_steps(os.path.join(workdir, "train"))
  for tag in ("loss", "regularization", "vision_loss", "audio_loss",
              "vision_accuracy", "audio_accuracy", "learning_rate"):
    assert logged.get(tag) == {1, 2, 3, 4}, tag
  assert [entry["step"] for entry in result["history"]] == [3, 4]
  history = result["history"][-1]
  assert history["loss"] == pytest.approx(
      history["vision_loss"] + history["audio_loss"], rel=1e-6)


def _poisoned_dataset(monkeypatch, bad_batches):
  """Makes the labelled training stream's batches number `bad_batches`
  (0-based) hold +inf in every spectrogram value."""
  original = input_pipeline.train_dataset

  def poisoned(*args, **kwargs):
    dataset = original(*args, **kwargs)
    bad = tf.constant(list(bad_batches), tf.int64)

    def poison(index, batch):
      features, labels = batch
      spectrogram = features["spectrogram"]
      hit = tf.reduce_any(tf.equal(bad, index))
      features = dict(features, spectrogram=tf.where(
          hit, tf.fill(tf.shape(spectrogram), float("inf")), spectrogram))
      return features, labels

    return dataset.enumerate().map(poison)

  monkeypatch.setattr(input_pipeline, "train_dataset", poisoned)


def test_classifiers_skip_a_non_finite_step(config, tmp_path, monkeypatch,
                                            caplog):
  """The loop's non-finite guard, for the classifiers: a batch whose loss is
  inf is not applied (the run still makes its 2 steps, from 3 batches), and
  a run of only such batches stops with `TrainingDiverged`, leaving no
  checkpoint."""
  _poisoned_dataset(monkeypatch, bad_batches=[1])
  workdir = str(tmp_path / "skipped")
  with caplog.at_level(logging.WARNING):
    result = baselines.train_classifiers(
        config, _classifiers_schedule(num_steps=2, checkpoint_every=1),
        workdir)
  assert result["step"] == 2
  assert "1 of 1 step(s) up to step 1 had a non-finite loss" in caplog.text
  _, _, classifiers, step = baselines.restore_classifiers(workdir)
  assert step == 2
  assert all(np.isfinite(w).all() for w in classifiers.get_weights())

  _poisoned_dataset(monkeypatch, bad_batches=range(100))
  diverging = dataclasses.replace(config, train=dataclasses.replace(
      config.train, max_bad_steps=3))
  workdir = str(tmp_path / "diverged")
  with pytest.raises(train.TrainingDiverged,
                     match=r"diverged at step 0: 3 consecutive ") as caught:
    baselines.train_classifiers(
        diverging, _classifiers_schedule(num_steps=2, checkpoint_every=1),
        workdir)
  assert caught.value.checkpoint is None
  assert workdir_lib.latest_checkpoint(workdir) is None
