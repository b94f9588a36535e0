r"""`l3-score`: the probability that a frame and a sound correspond.

  l3-score --model=EXPORT_OR_WORKDIR --image=frame.jpg --audio=sound.wav \
      [--at_seconds=T]
  l3-score --model=EXPORT_OR_WORKDIR --video=clip.mp4 --at_seconds=T
  l3-score --model=WORKDIR --video=clip.mp4 --at_seconds=T --heatmap=where.png

The sound is the 1-second window centred on T (default for an audio file:
its first second); for a video, the frame is the one displayed at T. Prints
one JSON line with the probability and what was scored. --heatmap also
draws, over the image, how much each location supports the correspondence
(l3_tf/analysis/localize.py); it needs a training workdir, not an export.
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import json
import sys

from absl import app
from absl import flags

from experiments import cli

from l3_tf.data import media
from l3_tf.serving import embed as embed_lib
from l3_tf.serving import score as score_lib

_MODEL = flags.DEFINE_string(
    "model", None, "an exported SavedModel or a training workdir",
    required=True)
_IMAGE = flags.DEFINE_string("image", None, "an image file")
_AUDIO = flags.DEFINE_string("audio", None, "a file with sound")
_VIDEO = flags.DEFINE_string("video", None, "a video with sound "
                             "(instead of --image and --audio)")
_AT = flags.DEFINE_float("at_seconds", None,
                         "centre of the 1-second sound window (and the "
                         "frame's time for --video)")
_HEATMAP = flags.DEFINE_string(
    "heatmap", None, "also write a PNG of where in the image the sound comes "
    "from (needs --model=WORKDIR)")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  try:
    localizer = (score_lib.load_localizer(_MODEL.value) if _HEATMAP.value
                 else None)
    embedder = embed_lib.Embedder.load(_MODEL.value)
    pair = score_lib.load_pair(image=_IMAGE.value, audio=_AUDIO.value,
                               video=_VIDEO.value, at_seconds=_AT.value,
                               params=embedder.audio_params)
  except (ValueError, FileNotFoundError, media.MediaError) as e:
    sys.exit(f"l3-score: {e}")
  probability = score_lib.score_pair(embedder, pair)
  result = {"probability": round(probability, 6), "image": pair.image_source,
            "audio": pair.audio_source, "at_seconds": pair.at_seconds}
  if localizer is not None:
    result.update(score_lib.save_heatmap(localizer, pair, _HEATMAP.value))
  print(json.dumps(result))


def run():
  """Console-script entry point (`l3-score`)."""
  cli.run(main)


if __name__ == "__main__":
  run()
