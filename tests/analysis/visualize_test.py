"""Unit figures, selectivity and localisation measures (fast: fake videos and
untrained tiny networks; the trained-network checks are in
visualize_trained_test.py)."""

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

from l3_tf.analysis import localization_figures
from l3_tf.analysis import localize
from l3_tf.analysis import overlays
from l3_tf.analysis import selectivity
from l3_tf.analysis import unit_figures
from l3_tf.analysis import visualize
from l3_tf.data import frame_sound_examples
from l3_tf.data import input_pipeline
from l3_tf.model import networks as model_lib
from l3_tf.training import compiled_check
from tests import fake_videos
from tests import testing

SR = 48000
CLIP = 48000


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
  """Fake videos (unlabelled) and a tiny untrained network."""
  import dataclasses
  data_dir = str(tmp_path_factory.mktemp("fake_videos"))
  name = fake_videos.build(data_dir)
  config = testing.tiny_config(1 / 32)
  config = dataclasses.replace(config, data=dataclasses.replace(
      config.data, dataset=name, data_dir=data_dir))
  import keras
  keras.utils.set_random_seed(0)
  avc = model_lib.avc_network(config.model, config.image, config.audio)
  return types.SimpleNamespace(
      config=config, avc=avc, builder=input_pipeline.load_builder(name, data_dir))


def _examples(fake, split="train", frames_per_video=3, max_videos=20):
  dataset = frame_sound_examples.example_dataset(fake.config, fake.builder, split,
                                      max_videos, frames_per_video, 4)
  return visualize.collect(dataset, {"trained": fake.avc})


def test_examples_are_frames_with_the_sound_around_them(fake):
  examples, activations = _examples(fake)
  stored = fake_videos.stored("train")
  usable = set(stored) - set(fake_videos.UNUSABLE_TRAIN_IDS)
  assert set(examples.video_ids) == usable
  assert np.all(examples.labels == -1)  # the fake videos have no label
  for i in range(len(examples)):
    video = stored[examples.video_ids[i]]
    time, start = float(examples.frame_times[i]), int(examples.audio_starts[i])
    # The window holds the frame's time, centred on it when it fits.
    assert start <= time * SR <= start + CLIP
    if CLIP // 2 <= time * SR <= video["audio"].size - CLIP // 2:
      assert start == round(time * SR) - CLIP // 2
    np.testing.assert_array_equal(examples.waveforms[i],
                                  video["audio"][start:start + CLIP])
    # The decoded frame is the stored frame of that time (JPEG is lossy:
    # the nearest of the video's frames).
    index = int(np.argmin(np.abs(video["frame_times"] - time)))
    errors = [np.abs(examples.frame(i).astype(float) - f).mean()
              for f in video["frames"]]
    assert int(np.argmin(errors)) == index
  # Frames spread over each video: fake_t0 has 13 eligible frames at 4 fps.
  times = examples.frame_times[examples.video_ids == "fake_t0"]
  np.testing.assert_allclose(times, [0.5, 1.5, 2.5])
  # Activations are the towers' pool4 on the same inputs.
  vision, audio, _ = model_lib.towers_of(fake.avc)
  some = [0, 5, len(examples) - 1]
  bound = compiled_check.forward_bound(fake.avc)
  testing.assert_close_normwise(
      activations["trained"]["vision"][some],
      vision(unit_figures.vision_inputs(examples, some, fake.config))[
          "embedding_512"], bound, what="vision pool4")
  testing.assert_close_normwise(
      activations["trained"]["audio"][some],
      audio(unit_figures.audio_inputs(examples, some, fake.config))[
          "embedding_512"], bound, what="audio pool4")


def test_visualize_writes_every_figure_and_summary(fake, tmp_path):
  out = str(tmp_path / "viz")
  options = visualize.Options(max_videos=4, frames_per_video=2, top_k=3,
                              num_units=2, num_pairs=2, tensorboard=True)
  summary = visualize.visualize(
      fake.avc, fake.config, fake.builder, "test", out, options,
      boxes_of=lambda video_id, time: [[0.0, 0.0, 0.5, 0.5]])
  assert summary["num_videos"] == 4 and summary["num_examples"] == 8
  for modality, kinds in (("vision", ("frames", "heatmaps")),
                          ("audio", ("frames", "spectrograms"))):
    shown = summary["units"][modality]
    assert len(shown) == 2
    for unit in shown:
      assert unit["files"] == [f"{modality}_units/unit_{unit['unit']:03d}_"
                               f"{kind}.png" for kind in kinds]
      assert len(unit["top"]) == 3
      # Top videos are distinct and ranked by activation.
      assert len({t["video_id"] for t in unit["top"]}) == 3
      scores = [t["activation"] for t in unit["top"]]
      assert scores == sorted(scores, reverse=True)
  assert [p["file"] for p in summary["localization"]["pairs"]] == [
      "localization/pair_00.png", "localization/pair_01.png"]
  hit = summary["localization"]["hit_rate"]
  assert hit["num_frames"] == 8 and hit["random_baseline"] == 0.25
  assert 0.0 <= hit["hit_rate"] <= 1.0
  dependence = summary["localization"]["sound_dependence"]
  assert dependence["num_frames"] == 8
  assert 0.0 <= dependence["own_higher"] <= 1.0
  assert "selectivity" not in summary  # unlabelled
  assert not os.path.exists(os.path.join(out, "selectivity.json"))
  for path in summary["files"]:
    with open(os.path.join(out, path), "rb") as f:
      assert f.read(4) == b"\x89PNG", path
  assert len(summary["files"]) == 2 * 2 * 2 + 2
  with open(os.path.join(out, "summary.json")) as f:
    assert json.load(f)["files"] == summary["files"]
  # The same images as TensorBoard summaries, tagged by path.
  tags = set()
  logdir = os.path.join(out, "tensorboard")
  for name in os.listdir(logdir):
    for event in tf.compat.v1.train.summary_iterator(os.path.join(logdir,
                                                                  name)):
      tags.update(value.tag for value in event.summary.value)
  assert tags == {os.path.splitext(p)[0] for p in summary["files"]}


def test_listed_units_are_shown_and_bad_ones_named(fake, tmp_path):
  options = visualize.Options(max_videos=3, frames_per_video=1, top_k=2,
                              vision_units=(3,), audio_units=(0, 5),
                              num_pairs=0)
  summary = visualize.visualize(fake.avc, fake.config, fake.builder, "test",
                                str(tmp_path / "a"), options)
  assert [u["unit"] for u in summary["units"]["vision"]] == [3]
  assert [u["unit"] for u in summary["units"]["audio"]] == [0, 5]
  assert summary["localization"]["pairs"] == []
  bad = visualize.Options(max_videos=3, frames_per_video=1, vision_units=(16,))
  with pytest.raises(ValueError, match=r"vision units \[16\] do not exist: "
                     r"the vision tower's conv4_2 has 16 channels"):
    visualize.visualize(fake.avc, fake.config, fake.builder, "test",
                        str(tmp_path / "b"), bad)
  with pytest.raises(input_pipeline.DatasetError, match="no split 'nope'"):
    visualize.visualize(fake.avc, fake.config, fake.builder, "nope",
                        str(tmp_path / "c"), options)
  with pytest.raises(ValueError, match="top_k=0 must be >= 1"):
    visualize.Options(top_k=0)


def _labelled_examples(labels_per_video, frames_per_video=2):
  """Examples of videos "v0", "v1", ... with the given labels."""
  video_ids = np.repeat([f"v{i}" for i in range(len(labels_per_video))],
                        frames_per_video)
  n = video_ids.size
  return frame_sound_examples.Examples(
      video_ids=video_ids,
      labels=np.repeat(labels_per_video, frames_per_video).astype(np.int64),
      frame_times=np.tile(np.arange(frames_per_video, dtype=np.float32), n //
                          frames_per_video),
      audio_starts=np.zeros(n, np.int64), frames=[b""] * n,
      waveforms=np.zeros((n, 1), np.int16),
      label_names=["a", "b", "c", "d"])


def test_selectivity_trained_random_null_and_duplicate_frames():
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(4), 10)  # 40 videos, 10 per label
  examples = _labelled_examples(labels)
  per_example_labels = examples.labels
  detectors = (per_example_labels[:, None] == np.arange(4)) * 2.0
  trained = np.concatenate([detectors + rng.normal(size=(80, 4)) * 0.3,
                            rng.normal(size=(80, 2))], axis=1)
  # A unit that fires on the frames of one video only: ranked per example,
  # its top 6 would be 2 frames of v0 + 4 random ones; per video it is one
  # video among the top-k, like any noise unit.
  one_video = np.where(examples.video_ids == "v0", 10.0,
                       rng.normal(size=80))[:, None]
  random = np.concatenate([rng.normal(size=(80, 6)), one_video], axis=1)
  report = selectivity.selectivity(
      {"trained": {"vision": trained, "audio": trained},
       "random": {"vision": random, "audio": random}},
      examples, k=6, threshold=0.8, null_repeats=10)
  assert report["num_videos"] == 40 and report["num_labels"] == 4
  assert report["label_counts"] == {"a": 10, "b": 10, "c": 10, "d": 10}
  for modality in ("vision", "audio"):
    ours, theirs = report[modality]["trained"], report[modality]["random"]
    assert ours["num_selective"] == 4 and ours["num_selective_labels"] == 4
    assert theirs["num_selective"] == 0
    assert ours["null"]["num_selective"] < 1
    assert ours["mean_purity"] > ours["null"]["mean_purity"] + 0.3
    assert ours["relative"]["num_selective"] == 4
    assert theirs["relative"]["num_selective"] == 0
  assert "trained" in selectivity.selectivity_table(report)
  skipped = selectivity.selectivity({"trained": {"vision": trained,
                                               "audio": trained}},
                                  examples, k=41, threshold=0.8,
                                  null_repeats=1)
  assert "40 labelled videos" in skipped["skipped"]


def test_rank_units_round_robin_over_labels_dead_last():
  rng = np.random.default_rng(1)
  labels = np.repeat(np.arange(3), 6)  # 18 videos
  onehot = (labels[:, None] == np.arange(3)).astype(float)
  acts = np.stack([
      onehot[:, 0] * 3 + rng.normal(size=18) * 0.1,  # 0: label 0, strong
      onehot[:, 0] * 2 + rng.normal(size=18) * 0.1,  # 1: label 0, weaker
      onehot[:, 1] * 2 + rng.normal(size=18) * 0.1,  # 2: label 1
      np.zeros(18),                                  # 3: dead
      onehot[:, 2] * 1 + rng.normal(size=18) * 0.1,  # 4: label 2
      rng.normal(size=18),                           # 5: not selective
  ], axis=1)
  order = unit_figures.rank_units(acts, labels, k=6, threshold=0.8)
  assert order[-1] == 3
  # One selective unit of every label before the second unit of label 0,
  # then the unselective unit.
  assert set(order[:3]) == {0, 2, 4} or set(order[:3]) == {1, 2, 4}
  assert order[3] in (0, 1) and order[4] == 5
  unlabelled = unit_figures.rank_units(acts, None, k=6)
  assert unlabelled[-1] == 3 and sorted(unlabelled) == list(range(6))


def test_peak_position_is_the_hot_cell_centre():
  frame = np.zeros((64, 96, 3), np.float32)  # 8 x 12 cells
  grid = np.zeros((8, 12))
  grid[2, 9] = 1.0
  heatmap = localize.Heatmap(frame=frame, grid=grid,
                             pixels=localize.upsample_grid(grid, 64, 96),
                             probability=0.5)
  x, y = localize.peak_position(heatmap)
  assert (x, y) == ((8 * 9 + 4) / 96, (8 * 2 + 4) / 64)
  # The upsampled heat peaks in the same block.
  rows, cols = np.nonzero(heatmap.pixels == heatmap.pixels.max())
  assert set(rows // 8) == {2} and set(cols // 8) == {9}
  assert localization_figures.inside((x, y), [72 / 96, 16 / 64, 80 / 96, 24 / 64])
  assert not localization_figures.inside((x, y), [0, 0, 72 / 96, 1])
  # Saturated at P = 1 (an untrained network's map often is): the log-odds
  # still rank the cells; without them the peak is the first cell.
  flat = np.ones((8, 12))
  log_odds = np.zeros((8, 12))
  log_odds[5, 1] = 30.0
  saturated = localize.Heatmap(frame=frame, grid=flat, pixels=None,
                               probability=1.0, log_odds=log_odds)
  assert localize.peak_position(saturated) == (12 / 96, 44 / 64)
  saturated.log_odds = None
  assert localize.peak_position(saturated) == (4 / 96, 4 / 64)


def test_box_contrast_and_mismatched_partners():
  frame = np.zeros((64, 96, 3), np.float32)  # 8 x 12 cells
  grid = np.full((8, 12), 0.2)
  grid[2:4, 6:9] = 0.8  # cells whose centres lie in the box below
  heatmap = localize.Heatmap(frame=frame, grid=grid, pixels=None,
                             probability=0.5)
  box = [48 / 96, 16 / 64, 72 / 96, 32 / 64]
  assert localization_figures.box_contrast(heatmap, [box]) == pytest.approx(0.6)
  assert localization_figures.box_contrast(heatmap, [[0, 0, 1, 1]]) == 0.0
  examples = _labelled_examples(np.array([0, 0, 1, 2]), frames_per_video=2)
  np.testing.assert_array_equal(localization_figures.mismatched_partners(examples),
                                [4, 4, 4, 4, 6, 6, 0, 0])
  single = _labelled_examples(np.array([0, 0]), frames_per_video=1)
  np.testing.assert_array_equal(localization_figures.mismatched_partners(single), [-1, -1])


def test_box_union_fraction_is_the_random_hit_chance():
  assert localization_figures.box_union_fraction([]) == 0.0
  assert localization_figures.box_union_fraction([[0, 0, 0.5, 0.5]]) == 0.25
  overlapping = [[0, 0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75]]
  assert localization_figures.box_union_fraction(overlapping) == pytest.approx(0.4375)
  rng = np.random.default_rng(0)
  points = rng.uniform(size=(20000, 2))
  hits = np.mean([any(localization_figures.inside(p, b) for b in overlapping)
                  for p in points])
  assert hits == pytest.approx(0.4375, abs=0.01)


def test_localization_pairs_prefer_another_label():
  examples = _labelled_examples(np.array([0, 0, 1, 2]), frames_per_video=2)
  pairs = localization_figures.localization_pairs(examples, 3)
  # First example of v0 (index 0) with v2 (index 4): v1 has the same label.
  assert pairs == [(0, 4), (2, 4), (4, 6)]
  assert localization_figures.localization_pairs(_labelled_examples(np.array([0])), 2) == []


def test_spectrogram_overlay_checks_the_front_end_shape(tmp_path):
  with pytest.raises(ValueError, match=r"spectrogram shape \(257, 100\)"):
    overlays.save_spectrogram_overlay(np.zeros((257, 100)), np.zeros((32, 12)),
                                      str(tmp_path / "s.png"))
  with pytest.raises(ValueError, match="no panels"):
    overlays.save_grid([], str(tmp_path / "g.png"))


def test_l3_score_heatmap_from_a_workdir_not_an_export(tiny_export, tmp_path,
                                                       tiny_bound):
  from data_prep.synthetic_av import generate
  from l3_tf.serving import score
  frames = np.full((24, 64, 96, 3), 40, np.uint8)
  frames[:, 16:48, 56:88] = (230, 40, 30)
  t = np.arange(2 * SR) / SR
  generate.write_mp4(str(tmp_path / "clip.mp4"), frames,
                     (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
                     frames_per_second=12)
  heatmap = str(tmp_path / "where.png")
  run = subprocess.run(
      [sys.executable, "-m", "experiments.score",
       f"--model={tiny_export.workdir}", f"--video={tmp_path / 'clip.mp4'}",
       "--at_seconds=1.0", f"--heatmap={heatmap}"],
      env=dict(os.environ, PYTHONPATH=str(testing.REPO_ROOT)),
      capture_output=True, text=True, timeout=300)
  assert run.returncode == 0, run.stderr[-3000:]
  line = json.loads(run.stdout.strip().splitlines()[-1])
  with open(heatmap, "rb") as f:
    assert f.read(4) == b"\x89PNG"
  assert line["heatmap"] == heatmap and all(0 < v < 1 for v in line["peak"])
  # The localiser's model is the scorer's: the same probability (the
  # scorer folds BN into the convs: one rounding more per weight, within
  # the forward bound's margin), both printed to 6 decimals (1e-6 more).
  from l3_tf.serving import embed
  pair = score.load_pair(video=str(tmp_path / "clip.mp4"), at_seconds=1.0)
  testing.assert_probability_close(
      line["heatmap_probability"], line["probability"], tiny_bound,
      testing.pair_logits(embed.Embedder.load(tiny_export.workdir),
                          tiny_export.avc, pair.image, pair.waveform),
      slack=1e-6, what="heatmap vs scorer probability")
  with pytest.raises(ValueError, match="is a SavedModel: heatmaps need the "
                     "training workdir"):
    score.load_localizer(tiny_export.saved_model)


@pytest.mark.real_data
@pytest.mark.slow
def test_real_clips_give_every_figure(request, tmp_path):
  """The 20 real clips of ../shared/data/av_clips, as a video_folder dataset
  (labels: the top-level folders), through the whole visualisation."""
  clips = testing.shared_data("av_clips")  # skips before any work
  tiny_export = request.getfixturevalue("tiny_export")
  data_dir = str(tmp_path / "tfds")
  builder = testing.build_video_folder(data_dir, clips, name="all")
  num_videos = builder.info.splits["train"].num_examples
  assert num_videos >= 19  # bento.mp4 (0.998 s of sound) is skipped
  out = str(tmp_path / "viz")
  options = visualize.Options(max_videos=32, frames_per_video=2, top_k=6,
                              num_units=3, num_pairs=4, purity_k=3)
  summary = visualize.visualize_workdir(
      tiny_export.workdir, out, dataset="video_folder/all", data_dir=data_dir,
      split="train", options=options)
  assert summary["num_videos"] == num_videos
  assert summary["num_examples"] == 2 * num_videos
  assert len(summary["units"]["vision"]) == len(summary["units"]["audio"]) == 3
  assert len(summary["localization"]["pairs"]) == 4
  assert len(summary["files"]) == 3 * 2 * 2 + 4
  for path in summary["files"]:
    with open(os.path.join(out, path), "rb") as f:
      assert f.read(4) == b"\x89PNG", path
  # Labelled by folder (SpecVQGAN, openl3, ...): purity is computed.
  assert summary["selectivity"]["num_labels"] >= 5
