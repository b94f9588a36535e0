"""How long the tests' trained model takes, and what it learned.

Builds the easy synthetic_av set and trains the tiny network of the
`easy_trained` test fixture (`tests.testing.train_easy_synthetic`: the real
`train.train_and_evaluate`), then measures on it what the tests assert:
the localisation hit rate on the held-out videos against the random-location
baseline and the dependence of the map on the sound (trained and random
weights), and unit purity (trained, random
weights, shuffled labels). Prints seconds per phase and one JSON line.

  python benchmarks/easy_synthetic.py [--root=/tmp/easy_synthetic] [--steps=200]
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import json
import os
import sys
import tempfile
import time

from absl import app
from absl import flags

from data_prep.synthetic_av import generate
from l3_tf.analysis import localization_figures
from l3_tf.analysis import localize
from l3_tf.analysis import selectivity
from l3_tf.analysis import visualize
from l3_tf.data import frame_sound_examples
from l3_tf.training import workdir as workdir_lib

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from tests import testing  # pylint: disable=g-import-not-at-top,wrong-import-position


_ROOT = flags.DEFINE_string("root", None, "working folder (default: a new "
                            "temporary one)")
_STEPS = flags.DEFINE_integer("steps", 200, "training steps")


def main(argv):
  del argv
  root = _ROOT.value or tempfile.mkdtemp(prefix="easy_synthetic_")
  trained = testing.train_easy_synthetic(os.path.join(root, "run"),
                                         _STEPS.value)
  started = time.perf_counter()
  config, avc, _ = workdir_lib.restore_avc_model(trained.workdir)
  _, random_avc, _ = workdir_lib.load_network("random", config, seed=0)
  videos = trained.truth["videos"]

  def boxes_of(video_id, time_seconds):
    return [o["box"] for o in generate.visible_objects(videos[video_id],
                                                       time_seconds)]

  held_out, _ = visualize.collect(frame_sound_examples.example_dataset(
      config, trained.builder, "test", 12, 12, 32), {})
  localizers = {name: localize.Localizer(net, config.model, config.image,
                                         config.audio)
                for name, net in (("trained", avc), ("random", random_avc))}
  hit_rates = {name: localization_figures.localization_hit_rate(loc, held_out, boxes_of)
               for name, loc in localizers.items()}
  dependence = {name: localization_figures.sound_dependence(loc, held_out, boxes_of)
                for name, loc in localizers.items()}
  examples, activations = visualize.collect(frame_sound_examples.example_dataset(
      config, trained.builder, "train", 32, 2, 32),
      {"trained": avc, "random": random_avc})
  report = selectivity.selectivity(activations, examples, k=5, threshold=0.8,
                                 null_repeats=50)
  measured = time.perf_counter() - started
  seconds = dict(trained.seconds, measure=measured)
  for phase, value in seconds.items():
    print(f"{phase:>8}: {value:6.1f} s")
  print(f"AVC accuracy (test pairs): {trained.result['eval']['accuracy']:.3f}")
  for name, rate in hit_rates.items():
    print(f"localisation, {name} weights: peak in the box {rate['hit_rate']:.3f}"
          f" of {rate['num_frames']} frames; random location "
          f"{rate['random_baseline']:.3f} (x{rate['ratio']:.1f}); box "
          f"contrast own sound {dependence[name]['own_contrast']:.3f}, "
          f"another class's {dependence[name]['other_contrast']:.3f}")
  print(selectivity.selectivity_table(report))
  print("EASY_SYNTHETIC " + json.dumps({
      "seconds": seconds, "accuracy": trained.result["eval"]["accuracy"],
      "hit_rate": {k: v["hit_rate"] for k, v in hit_rates.items()},
      "sound_dependence": dependence,
      "random_baseline": hit_rates["trained"]["random_baseline"]}))


if __name__ == "__main__":
  app.run(main)
