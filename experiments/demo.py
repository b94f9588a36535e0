"""The main job on the embedded default (`make demo`), from nothing to a number.

  python -m experiments.demo --workdir=runs/demo

1. generates the synthetic audio-visual videos (mp4, H.264 + AAC) and builds
   them into TFRecords with the real decoder (`data_prep.synthetic_av`; the
   demo's dataset settings are `experiments.configs.demo.DATASET`);
2. trains L3-Net from scratch on the AVC task with the `demo` config (a
   NARROWED network, see experiments/configs/demo.py);
3. evaluates it on the held-out test split (fixed, balanced pairs), and
   gives the ceiling of a model that only tells the classes apart
   (`class_level_ceiling`: the evaluation's negatives whose two videos show
   one class look like positives to it);
4. exports the trained network as a SavedModel (<workdir>/avc/export) and
   embeds one newly generated video with it, as `l3-embed video` would;
5. prints one line `DEMO_RESULT {json}`.

The generated dataset is kept in <workdir>/data and reused by later runs;
the training run in <workdir>/avc starts from scratch every time (pass
--noretrain to only re-evaluate an existing one).
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import json
import os
import shutil
import time

from absl import app
from absl import flags
from absl import logging

from experiments import flags_lib
from experiments.configs import demo as demo_config
from l3_tf.model import model_summary
from l3_tf.data import input_pipeline
from l3_tf.platform import cpu_features
from l3_tf.model import precision as precision_lib
from l3_tf.serving import embed_files
from l3_tf.training import distribute
from l3_tf.training import evaluate
from l3_tf.training import train
from l3_tf.training import workdir as workdir_lib

_WORKDIR = flags.DEFINE_string("workdir", "runs/demo", "output directory")
_RETRAIN = flags.DEFINE_bool("retrain", True,
                             "train from scratch (else only evaluate)")
_SEED = flags.DEFINE_integer(
    "seed", None, "training seed (train.seed: initial weights and the pairs "
    "drawn; the generated videos do not change); default the config's")
_DATA = flags.DEFINE_enum(
    "data", "demo", ["demo", "tiny"],
    "demo: experiments/configs/demo.DATASET; tiny: synthetic_av's 12-video "
    "test set (with --config=test: a smoke test of this binary, seconds)")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  from data_prep import synthetic_av  # the demo's data; not a library dep
  from data_prep.synthetic_av import generate

  started = time.perf_counter()
  load_at_start = os.getloadavg()
  workdir = os.path.abspath(_WORKDIR.value)
  data_dir = os.path.join(workdir, "data")
  train_dir = os.path.join(workdir, "avc")

  if _DATA.value == "demo":
    builder = synthetic_av.build(data_dir, config="default",
                                 **demo_config.DATASET)
  else:
    builder = synthetic_av.build(data_dir, config="tiny")
  data_seconds = time.perf_counter() - started
  dataset = builder.info.full_name.rsplit("/", 1)[0]  # synthetic_av/<config>
  logging.info("dataset %s in %s: %s (%.0f s)", dataset, data_dir,
               {k: v.num_examples for k, v in builder.info.splits.items()},
               data_seconds)

  if flags_lib.CONFIG.value != "demo":
    logging.warning("--config=%s: the demo's figures are for 'demo'",
                    flags_lib.CONFIG.value)
  seed = () if _SEED.value is None else (f"train.seed={_SEED.value}",)
  config = flags_lib.resolved_config(
      (f"data.dataset={dataset}", f"data.data_dir={data_dir}", *seed))
  if _RETRAIN.value and os.path.exists(train_dir):
    shutil.rmtree(train_dir)
  train_started = time.perf_counter()
  if _RETRAIN.value:
    result = train.train_and_evaluate(
        config, train_dir, distribute.make_strategy(config.train.devices))
    results = result["eval"]
  else:
    results = evaluate.evaluate_workdir(train_dir, config.data.eval_split)
  train_seconds = time.perf_counter() - train_started
  _, model, step = workdir_lib.restore_avc_model(train_dir)

  # A video the network never saw (same generator, another seed), embedded
  # through the exported SavedModel.
  export_started = time.perf_counter()
  video_dir = os.path.join(workdir, "unseen_video")
  generate.write_videos(video_dir, 1, seed=123, split="test",
                        params=builder.builder_config.generator_params())
  embedded = embed_files.export_and_embed_video(
      train_dir, os.path.join(video_dir, "test", "00000.mp4"))
  export_seconds = time.perf_counter() - export_started

  # Where the figure stands: a model that only tells classes apart calls
  # the evaluation's same-class negatives positive.
  pairs = {"frame_video_id": [], "audio_video_id": [], "label": []}
  for _, label, metadata in input_pipeline.eval_dataset(
      config, with_metadata=True, builder=builder):
    pairs["label"].extend(label.numpy().tolist())
    for key in ("frame_video_id", "audio_video_id"):
      pairs[key].extend(metadata[key].numpy().tolist())
  ceiling = generate.class_level_ceiling(
      pairs["frame_video_id"], pairs["audio_video_id"], pairs["label"],
      synthetic_av.ground_truth(builder))

  summary = {
      "avc_test_accuracy": round(results["accuracy"], 4),
      "eval_num_pairs": results["num_pairs"],
      "eval_num_videos": results["num_videos"],
      "positive_accuracy": round(results["positive_accuracy"], 4),
      "negative_accuracy": round(results["negative_accuracy"], 4),
      "class_level_ceiling": round(ceiling["ceiling"], 4),
      "same_class_negatives": ceiling["same_class_negatives"],
      "seed": config.train.seed,
      "steps": step,
      "train_seconds": round(train_seconds, 1),
      "data_seconds": round(data_seconds, 1),
      "export_seconds": round(export_seconds, 1),
      "total_seconds": round(time.perf_counter() - started, 1),
      "config": {
          "name": config.name,
          "narrowed": config.model.is_narrowed,
          "width_multiplier": config.model.width_multiplier,
          "widths": list(config.model.widths),
          "parameters": model_summary.parameter_counts(model)["total"],
          "batch_size": config.train.batch_size_per_replica,
          "learning_rate": config.train.learning_rate,
          "warmup_steps": config.train.warmup_steps,
          "learning_rate_decay": config.train.learning_rate_decay,
          "batch_norm_momentum": config.model.batch_norm_momentum,
          "precision": precision_lib.resolve(config.train),
          "input": "224x224 frames, 257x199 log-spectrograms (full size)",
      },
      "dataset": {"name": dataset,
                  **(demo_config.DATASET if _DATA.value == "demo" else {}),
                  "split_sizes": {k: v.num_examples
                                  for k, v in builder.info.splits.items()}},
      "workdir": train_dir,
      "export_path": embedded["export_path"],
      "embedded_video": {k: v for k, v in embedded.items()
                         if k != "export_path"},
      "numeric_path": cpu_features.numeric_path(),
      "load_average_at_start": [round(x, 2) for x in load_at_start],
      "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
  }
  print("DEMO_RESULT " + json.dumps(summary, default=list))


if __name__ == "__main__":
  flags.FLAGS.set_default("config", "demo")
  app.run(main)
