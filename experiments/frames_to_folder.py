"""Writes a labelled image folder from a labelled video dataset's frames.

  python -m experiments.frames_to_folder --dataset=synthetic_av \
      --data_dir=runs/demo/tfds --output_dir=runs/frames [--frames_per_video=4]

The folder (<output_dir>/<split>/<class>/<video>_<k>.jpg) feeds
`python -m experiments.imagenet_linear_probe --dataset=folder
--image_folder=<output_dir> --eval_split=test`.
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import json

from absl import app
from absl import flags

from l3_tf.data import frame_folder
from l3_tf.data import input_pipeline

_DATASET = flags.DEFINE_string("dataset", "synthetic_av",
                               "prepared labelled video dataset (TFDS name)")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "its TFDS data dir")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "the folder to write",
                                  required=True)
_SPLITS = flags.DEFINE_list("splits", ["train", "test"], "splits to write")
_FRAMES = flags.DEFINE_integer("frames_per_video", 4,
                               "evenly spaced frames per video")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  try:
    builder = input_pipeline.load_builder(_DATASET.value, _DATA_DIR.value)
    counts = frame_folder.write_frame_folder(builder, _OUTPUT_DIR.value,
                                             _SPLITS.value, _FRAMES.value)
  except ValueError as e:
    raise SystemExit(f"error: {e}") from None
  print(json.dumps({"output_dir": _OUTPUT_DIR.value, "images": counts}))


if __name__ == "__main__":
  app.run(main)
