"""What a briefly trained L3-Net learned, measured against the ground truth of
the synthetic videos: where the sound comes from, and unit selectivity.

The network is the `easy_trained` session fixture (tests/conftest.py): a
1/16-width L3-Net trained by `train.train_and_evaluate` on generated videos
whose ground truth holds every object's box in every frame.
"""

import json
import os
import subprocess
import sys

import pytest
from scipy import stats

from data_prep.synthetic_av import generate
from l3_tf.analysis import localization_figures
from l3_tf.analysis import localize
from l3_tf.analysis import selectivity
from l3_tf.analysis import units
from l3_tf.analysis import visualize
from l3_tf.data import frame_sound_examples
from l3_tf.training import workdir as workdir_lib
from tests import testing

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def networks(easy_trained):
  config, avc, _ = workdir_lib.restore_avc_model(easy_trained.workdir)
  _, random_avc, _ = workdir_lib.load_network("random", config, seed=0)
  return config, avc, random_avc


def _boxes_of(truth):
  return lambda video_id, time: [
      o["box"] for o in generate.visible_objects(truth["videos"][video_id],
                                                 time)]


def test_heatmap_peaks_on_the_sounding_object(easy_trained, networks):
  """Over every frame of the held-out videos, the peak of the heatmap of
  (frame, its own sound) lies in the sounding object's box far more often
  than a uniformly random location would, and the map follows the sound."""
  config, avc, random_avc = networks
  dataset = frame_sound_examples.example_dataset(config, easy_trained.builder, "test",
                                      max_videos=12, frames_per_video=12,
                                      batch_size=32)
  examples, _ = visualize.collect(dataset, {})
  boxes_of = _boxes_of(easy_trained.truth)
  localizer = localize.Localizer(avc, config.model, config.image,
                                 config.audio)
  trained = localization_figures.localization_hit_rate(localizer, examples, boxes_of)
  dependence = localization_figures.sound_dependence(localizer, examples, boxes_of)
  untrained = localization_figures.localization_hit_rate(
      localize.Localizer(random_avc, config.model, config.image, config.audio),
      examples, boxes_of)
  print(f"localisation on {trained['num_frames']} held-out frames: hit rate "
        f"{trained['hit_rate']:.3f} (random weights "
        f"{untrained['hit_rate']:.3f}), random-location baseline "
        f"{trained['random_baseline']:.3f}; box contrast with its own sound "
        f"{dependence['own_contrast']:.3f}, with another class's "
        f"{dependence['other_contrast']:.3f}; training "
        f"{easy_trained.seconds}, AVC accuracy "
        f"{easy_trained.result['eval']['accuracy']:.3f}")
  assert trained["num_frames"] >= 120 and trained["num_without_object"] == 0
  baseline = trained["random_baseline"]
  assert 0.05 < baseline < 0.2  # objects of 64-96 px in 256 x 256 frames
  assert trained["hit_rate"] >= 4 * baseline
  # Not luck: P(at least this many hits | each a coin of the baseline's odds).
  hits = round(trained["hit_rate"] * trained["num_frames"])
  assert stats.binom.sf(hits - 1, trained["num_frames"], baseline) < 1e-9
  # Not the architecture alone: training moved the peak onto the objects.
  assert trained["hit_rate"] >= untrained["hit_rate"] + 0.2
  # Not saliency alone (an object on a plain background stands out; 20
  # steps of training, still at chance on AVC, already put the peak on it a
  # third of the time): with the frame's own sound, the object's cells
  # score clearly higher than the rest, and higher than with the sound of
  # another class. (After 20 steps both contrasts are about -0.01.)
  assert dependence["num_frames"] == trained["num_frames"]
  assert dependence["own_contrast"] >= 0.05
  assert dependence["own_contrast"] >= dependence["other_contrast"] + 0.05


def test_trained_units_are_label_selective(easy_trained, networks):
  """Purity of the top-5 videos per unit: the trained towers against the
  same towers with random weights and against shuffled labels."""
  config, avc, random_avc = networks
  dataset = frame_sound_examples.example_dataset(config, easy_trained.builder, "train",
                                      max_videos=32, frames_per_video=2,
                                      batch_size=32)
  examples, activations = visualize.collect(
      dataset, {"trained": avc, "random": random_avc})
  report = selectivity.selectivity(activations, examples, k=5, threshold=0.8,
                                 null_repeats=50)
  print(selectivity.selectivity_table(report))
  assert report["num_videos"] == 32 and report["num_labels"] == 4
  for modality in units.MODALITIES:
    trained = report[modality]["trained"]
    random = report[modality]["random"]
    # Far above what the same activations give with shuffled labels.
    for ranking in (trained, trained["relative"]):
      assert ranking["mean_purity"] >= ranking["null"]["mean_purity"] + 0.25
      assert ranking["num_selective"] >= 8 * max(
          ranking["null"]["num_selective"], 1)
    # Ranked relative to the other units (so that a class exciting every
    # unit does not top them all), more trained units are selective than
    # random ones, and more purely.
    assert (trained["relative"]["num_selective"]
            > random["relative"]["num_selective"])
    assert (trained["relative"]["mean_purity"]
            > random["relative"]["mean_purity"])
  # By magnitude too for vision. Not asserted for audio: random filters
  # already separate these four pitches and timbres, and the class with the
  # most energy tops the magnitude ranking of most random audio units.
  assert (report["vision"]["trained"]["num_selective"]
          > report["vision"]["random"]["num_selective"])


def test_visualize_binary_on_the_trained_model(easy_trained, tmp_path):
  out = str(tmp_path / "viz")
  env = dict(os.environ, PYTHONPATH=str(testing.REPO_ROOT))
  run = subprocess.run(
      [sys.executable, "-m", "experiments.visualize",
       f"--workdir={easy_trained.workdir}", f"--output_dir={out}",
       "--split=test", "--max_videos=6", "--frames_per_video=1",
       "--num_units=1", "--top_k=3", "--num_pairs=1", "--purity_k=3"],
      env=env, capture_output=True, text=True, timeout=300)
  assert run.returncode == 0, run.stderr[-3000:]
  assert "VISUALIZE_RESULT" in run.stdout
  with open(os.path.join(out, "summary.json")) as f:
    summary = json.load(f)
  assert summary["split"] == "test" and summary["num_videos"] == 6
  # synthetic_av: the hit rate against its ground-truth boxes is measured.
  assert summary["localization"]["hit_rate"]["num_frames"] == 6
  random = summary["localization"]["random"]
  assert random["hit_rate"]["num_frames"] == 6
  assert random["sound_dependence"]["num_frames"] == 6
  assert len(summary["files"]) == 2 * 2 + 1
  with open(os.path.join(out, "selectivity.json")) as f:
    report = json.load(f)
  assert set(report["vision"]) == {"trained", "random"}
  assert report["k"] == 3 and report["num_videos"] == 6
