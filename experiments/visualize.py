r"""What a trained L3-Net learned: unit figures, localisation, selectivity.

  python -m experiments.visualize --workdir=runs/demo --output_dir=runs/demo/viz \
      [--dataset=synthetic_av --data_dir=/tmp/tfds --split=train] \
      [--max_videos=128 --frames_per_video=2 --num_units=6 --top_k=8] \
      [--vision_units=3,17 --audio_units=5] [--tensorboard]

Reads at most --max_videos videos of the split once; writes the PNGs,
selectivity.json (labelled datasets: purity of the trained network, of the
same architecture with random weights, and of shuffled labels) and
summary.json under --output_dir (see l3_tf/analysis/visualize.py). On synthetic_av,
the localisation hit rate and box contrast against the ground-truth boxes
are added, for the trained and the random weights. Prints
one VISUALIZE_RESULT JSON line.
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import json
import sys

from absl import app
from absl import flags

from l3_tf.analysis import units
from l3_tf.analysis import visualize
from l3_tf.data import input_pipeline

_WORKDIR = flags.DEFINE_string("workdir", None, "a training workdir",
                               required=True)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "where the figures go",
                                  required=True)
_DATASET = flags.DEFINE_string(
    "dataset", None, "a prepared video dataset, e.g. synthetic_av or "
    "video_folder (default: the one the workdir trained on)")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "its TFDS data dir "
                                "(default: the training config's)")
_SPLIT = flags.DEFINE_string("split", None, "split to read (default: the "
                             "config's evaluation split)")
_DEFAULTS = visualize.Options()
_MAX_VIDEOS = flags.DEFINE_integer("max_videos", _DEFAULTS.max_videos,
                                   "videos read (one pass)")
_FRAMES = flags.DEFINE_integer("frames_per_video", _DEFAULTS.frames_per_video,
                               "examples per video")
_TOP_K = flags.DEFINE_integer("top_k", _DEFAULTS.top_k, "videos per unit "
                              "figure")
_NUM_UNITS = flags.DEFINE_integer("num_units", _DEFAULTS.num_units,
                                  "units shown per tower when not listed")
_VISION_UNITS = flags.DEFINE_list("vision_units", [], "vision units to show")
_AUDIO_UNITS = flags.DEFINE_list("audio_units", [], "audio units to show")
_NUM_PAIRS = flags.DEFINE_integer("num_pairs", _DEFAULTS.num_pairs,
                                  "localisation figures")
_PURITY_K = flags.DEFINE_integer("purity_k", _DEFAULTS.purity_k,
                                 "top-k videos of the purity measure")
_THRESHOLD = flags.DEFINE_float("purity_threshold", _DEFAULTS.purity_threshold,
                                "purity of a selective unit")
_TENSORBOARD = flags.DEFINE_bool("tensorboard", False, "also write the images "
                                 "as TensorBoard summaries (OUTPUT_DIR/"
                                 "tensorboard)")


def synthetic_boxes(builder):
  """Ground-truth boxes of synthetic_av (None for other datasets)."""
  if builder.name != "synthetic_av":
    return None
  import data_prep.synthetic_av  # pylint: disable=g-import-not-at-top
  from data_prep.synthetic_av import generate  # pylint: disable=g-import-not-at-top
  videos = data_prep.synthetic_av.ground_truth(builder)["videos"]
  return lambda video_id, time: [
      o["box"] for o in generate.visible_objects(videos[video_id], time)]


def _ints(values, flag):
  try:
    return tuple(int(v) for v in values)
  except ValueError:
    raise ValueError(f"--{flag}={','.join(values)}: expected unit indices "
                     "(integers)") from None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  try:
    options = visualize.Options(
        max_videos=_MAX_VIDEOS.value, frames_per_video=_FRAMES.value,
        top_k=_TOP_K.value, num_units=_NUM_UNITS.value,
        vision_units=_ints(_VISION_UNITS.value, "vision_units"),
        audio_units=_ints(_AUDIO_UNITS.value, "audio_units"),
        num_pairs=_NUM_PAIRS.value, purity_k=_PURITY_K.value,
        purity_threshold=_THRESHOLD.value, tensorboard=_TENSORBOARD.value)
    summary = visualize.visualize_workdir(
        _WORKDIR.value, _OUTPUT_DIR.value, dataset=_DATASET.value,
        data_dir=_DATA_DIR.value, split=_SPLIT.value, options=options,
        boxes_for=synthetic_boxes)
  except (ValueError, FileNotFoundError, input_pipeline.DatasetError) as e:
    sys.exit(f"visualize: {e}")
  if "selectivity_table" in summary:
    print(summary["selectivity_table"])
  print("VISUALIZE_RESULT " + json.dumps({
      key: summary.get(key) for key in ("dataset", "split", "num_examples",
                                        "num_videos", "selectivity",
                                        "seconds")} | {
          "hit_rate": summary["localization"].get("hit_rate"),
          "sound_dependence": summary["localization"].get(
              "sound_dependence"),
          "random_weights_localization": summary["localization"].get(
              units.RANDOM),
          "num_files": len(summary["files"])}))


if __name__ == "__main__":
  app.run(main)
