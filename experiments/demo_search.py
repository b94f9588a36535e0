"""`make demo-search`: AVE-Net at demo width on the demo's generated set,
and the cross-modal retrieval it makes possible.

  python -m experiments.demo_search --workdir=runs/demo

1. generates (or reuses) the demo's synthetic videos in <workdir>/data, as
   `make demo` does (`experiments.configs.demo.DATASET`);
2. trains AVE-Net (`demo_avenet`: the demo's narrowed network and schedule
   with `model.fusion = "distance"`) in <workdir>/avenet, resuming an
   existing run;
3. ranks the test split's frames for each of its sounds in the shared space
   (`l3_tf.evaluation.retrieval`), beside the same network with random weights;
4. prints the retrieval table and one line `DEMO_SEARCH_RESULT {json}` with
   sound-to-image recall@1 (trained, random, chance).

A separate target from `make demo` so that the demo keeps its time: this
trains a second network (about as long as the demo's).
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import json
import os
import time

from absl import app
from absl import flags

from experiments import cli
from experiments import flags_lib
from experiments.configs import demo as demo_config
from l3_tf.evaluation import retrieval
from l3_tf.training import distribute
from l3_tf.training import train

_WORKDIR = flags.DEFINE_string("workdir", "runs/demo", "output directory "
                               "(shares <workdir>/data with `make demo`)")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  from data_prep import synthetic_av  # the demo's data; not a library dep

  started = time.perf_counter()
  workdir = os.path.abspath(_WORKDIR.value)
  data_dir = os.path.join(workdir, "data")
  builder = synthetic_av.build(data_dir, config="default",
                               **demo_config.DATASET)
  dataset = builder.info.full_name.rsplit("/", 1)[0]
  config = flags_lib.resolved_config(
      (f"data.dataset={dataset}", f"data.data_dir={data_dir}"))
  if config.model.fusion != "distance":
    raise SystemExit(f"error: --config={config.name} has model.fusion="
                     f"{config.model.fusion!r}; the search demo needs an "
                     "AVE-Net (model.fusion=distance)")
  train_dir = os.path.join(workdir, "avenet")
  result = train.train_and_evaluate(
      config, train_dir, distribute.make_strategy(config.train.devices))
  results = retrieval.run([train_dir],
                          retrieval.RetrievalOptions(split="test"))
  print(retrieval.table(results, "audio_to_image"))
  trained, untrained = results["models"]
  sound_to_image = {
      name: model["methods"][retrieval.SHARED]["audio_to_image"]
      for name, model in (("trained", trained), ("random", untrained))}
  print("DEMO_SEARCH_RESULT " + json.dumps({
      "sound_to_image_recall@1": round(sound_to_image["trained"]["recall@1"], 4),
      "random_weights_recall@1": round(sound_to_image["random"]["recall@1"], 4),
      "chance_recall@1": round(sound_to_image["trained"]["chance_recall@1"], 4),
      "num_queries": sound_to_image["trained"]["num_queries"],
      "avc_test_accuracy": round(result["eval"]["accuracy"], 4),
      "steps": result["step"], "config": config.name,
      "width_multiplier": config.model.width_multiplier,
      "workdir": train_dir,
      "total_seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
  flags.FLAGS.set_default("config", "demo_avenet")
  cli.run(main)
