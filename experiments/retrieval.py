"""Cross-modal and within-modality retrieval of trained networks (AVE-Net, L3).

  python -m experiments.retrieval --weights=runs/demo_avenet/avc,runs/demo/avc \
      --output_dir=runs/retrieval [--split=test --items_per_video=1] \
      [--record_dir=results --record_prefix=retrieval_demo]

Reads the labelled split of the first workdir's dataset, ranks galleries by
every method each network supports (`l3_tf.evaluation.retrieval`), beside each
architecture with random weights, and writes <output_dir>/results.json;
prints the sound-to-image and image-to-sound tables. `--record_dir` writes
one report record per network and ranking (shown by `experiments.report`).
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import json
import os
import time

from absl import app
from absl import flags

from experiments import cli
from l3_tf.evaluation import records
from l3_tf.evaluation import retrieval
from l3_tf.training import config as config_lib

_WEIGHTS = flags.DEFINE_list("weights", None, "training workdirs",
                             required=True)
_SPLIT = flags.DEFINE_string("split", "test", "split of queries and gallery")
_MAX_VIDEOS = flags.DEFINE_integer("max_videos", 1000, "videos read")
_ITEMS = flags.DEFINE_integer("items_per_video", 1,
                              "frames (each with its centred sound) per video")
_RANDOM = flags.DEFINE_bool("random_twins", True,
                            "also evaluate each architecture untrained")
_SEED = flags.DEFINE_integer("seed", 0, "initialisation seed of the twins")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "where results.json goes",
                                  required=True)
_RECORD_DIR = flags.DEFINE_string("record_dir", None,
                                  "also write report records into this folder")
_RECORD_PREFIX = flags.DEFINE_string("record_prefix", "retrieval",
                                     "file name prefix of the records")


def _slug(text: str) -> str:
  return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  started = time.perf_counter()
  env = records.environment()
  try:
    options = retrieval.RetrievalOptions(
        split=_SPLIT.value, max_videos=_MAX_VIDEOS.value,
        items_per_video=_ITEMS.value)
    results = retrieval.run(_WEIGHTS.value, options, _RANDOM.value,
                            _SEED.value)
  except (ValueError, FileNotFoundError) as e:
    raise SystemExit(f"error: {e}") from None
  seconds = time.perf_counter() - started
  for direction in ("audio_to_image", "image_to_audio", "audio_to_audio",
                    "image_to_image"):
    print(retrieval.table(results, direction))
  os.makedirs(_OUTPUT_DIR.value, exist_ok=True)
  path = os.path.join(_OUTPUT_DIR.value, "results.json")
  with open(path, "w") as f:
    json.dump(dict(results, models=[
        dict(m, config=config_lib.to_dict(m["config"]))
        for m in results["models"]]), f, indent=2, sort_keys=True)
  print(f"wrote {path}")
  if _RECORD_DIR.value:
    for record in retrieval.make_records(
        results, records.command("experiments.retrieval"),
        records.note_end(env), seconds):
      name = f"{_RECORD_PREFIX.value}_{_slug(record['method'])}.json"
      print("wrote the record",
            records.write_record(record, os.path.join(_RECORD_DIR.value, name)))


if __name__ == "__main__":
  cli.run(main)
