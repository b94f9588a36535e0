"""ImageNet linear probe (PAPER.md §5): frozen vision trunk, 8192-d, one layer.

  python -m experiments.imagenet_linear_probe --weights=WORKDIR \
      --data_dir=~/tensorflow_datasets --output_dir=runs/probe
  python -m experiments.imagenet_linear_probe --weights=random \
      --dataset=folder --image_folder=DIR --eval_split=test --output_dir=...

`imagenet2012` is a TFDS manual-download dataset: place ILSVRC2012_img_train.tar
and ILSVRC2012_img_val.tar in <data_dir>/downloads/manual/ first.
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import json
import os
import time

from absl import app
from absl import flags

from experiments import configs
from l3_tf.evaluation import linear_probe
from l3_tf.evaluation import records
from l3_tf.model import networks as model_lib
from l3_tf.training import workdir as workdir_lib

_WEIGHTS = flags.DEFINE_string("weights", "random",
                               "'random' or a training workdir")
_RANDOM_CONFIG = flags.DEFINE_string(
    "random_config", "paper", "architecture config used with --weights=random")
_DATASET = flags.DEFINE_string("dataset", "imagenet2012",
                               "TFDS name, or 'folder' for --image_folder")
_IMAGE_FOLDER = flags.DEFINE_string("image_folder", None,
                                    "<root>/<split>/<label>/<images>")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir")
_TRAIN_SPLIT = flags.DEFINE_string("train_split", "train", "training split")
_EVAL_SPLIT = flags.DEFINE_string("eval_split", "validation", "reported split")
_EPOCHS = flags.DEFINE_integer("epochs", 10, "passes over the training split")
_BATCH = flags.DEFINE_integer("batch_size", 256, "images per step")
_LR = flags.DEFINE_float("learning_rate", 0.1, "SGD learning rate (cosine)")
_MAX_TRAIN = flags.DEFINE_integer("max_train_examples", None, "subset size")
_MAX_EVAL = flags.DEFINE_integer("max_eval_examples", None, "subset size")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "where results.json goes")
_RECORD = flags.DEFINE_string("record", None,
                              "also write a report record to this JSON path")
_RECORD_DATASET = flags.DEFINE_string(
    "record_dataset", None, "dataset name in the record (default: --dataset, "
    "or the image folder's name)")
flags.mark_flag_as_required("output_dir")


def main(argv):
  del argv
  env = records.environment() if _RECORD.value else None
  started = time.perf_counter()
  config, avc, description = workdir_lib.load_network(
      _WEIGHTS.value, configs.get_config(_RANDOM_CONFIG.value))
  vision, _, _ = model_lib.towers_of(avc)
  probe_config = linear_probe.ProbeConfig(
      dataset=_DATASET.value, image_folder=_IMAGE_FOLDER.value,
      data_dir=_DATA_DIR.value, train_split=_TRAIN_SPLIT.value,
      eval_split=_EVAL_SPLIT.value, batch_size=_BATCH.value,
      epochs=_EPOCHS.value, learning_rate=_LR.value,
      max_train_examples=_MAX_TRAIN.value, max_eval_examples=_MAX_EVAL.value)
  results = linear_probe.run(vision, probe_config, config.image)
  results["weights"] = description
  results["network_widths"] = list(config.model.widths)
  results["narrowed"] = config.model.is_narrowed
  path = linear_probe.write_results(results, _OUTPUT_DIR.value)
  print(json.dumps({k: results[k] for k in ("top1", "top5", "num_train_examples",
                                            "num_eval_examples", "weights")}))
  print(f"wrote {path}")
  if _RECORD.value:
    name = _RECORD_DATASET.value or (
        os.path.basename(os.path.normpath(_IMAGE_FOLDER.value))
        if _DATASET.value == "folder" else _DATASET.value)
    step = (None if _WEIGHTS.value == "random"
            else workdir_lib.latest_step(_WEIGHTS.value))
    records.write_record(linear_probe.make_record(
        results, config, step, name,
        records.command("experiments.imagenet_linear_probe"),
        records.note_end(env),
        time.perf_counter() - started), _RECORD.value)
    print(f"wrote the record {_RECORD.value}")


if __name__ == "__main__":
  app.run(main)
