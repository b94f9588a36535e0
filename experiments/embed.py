r"""`l3-embed`: embeddings of audio, image and video files into .npz files.

  l3-embed audio sounds/ a.wav --model=EXPORT_OR_WORKDIR --output_dir=out
  l3-embed video clips/ --model=... --output_dir=out --hop_seconds=0.5
  l3-embed image photos/ --model=... --output_dir=out --embedding=512

Writes `<output_dir>/<name>.npz` per input (`embedding` and `timestamps`;
for video `audio_embedding`, `image_embedding` and their shared
`timestamps`). A timestamp is the CENTRE of the 1-second audio window, and
for video also the time of the frame used (see `l3_tf/embed.py`). Existing
outputs are skipped unless --overwrite. Files that fail are reported and
counted; the exit status is 1 if any failed.
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import sys

from absl import app
from absl import flags

from l3_tf import embed as embed_lib
from l3_tf import embed_files

_MODEL = flags.DEFINE_string(
    "model", None, "an exported SavedModel or a training workdir",
    required=True)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None,
                                  "folder for the .npz files", required=True)
_HOP = flags.DEFINE_float("hop_seconds", embed_lib.DEFAULT_HOP_SECONDS,
                          "time between consecutive embeddings")
_CENTER = flags.DEFINE_bool(
    "center", True, "pad half a window at the start so the first window is "
    "centred on t=0 (--nocenter: the first window starts at t=0)")
_BATCH = flags.DEFINE_integer("batch_size", embed_lib.DEFAULT_BATCH_SIZE,
                              "windows or images per network call")
_EMBEDDING = flags.DEFINE_enum(
    "embedding", None, ["512", "6144", "8192"],
    "512 (pool4); 6144 audio / 8192 image (conv4_2 taps, the default); "
    "for video 512 or the taps of both towers")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "re-embed existing outputs")
_COMPUTE_DTYPE = flags.DEFINE_enum(
    "compute_dtype", "float32", ["float32", "bfloat16"],
    "for a workdir model: dtype of the convolutions")
_PROGRESS = flags.DEFINE_bool("progress", True, "show a progress bar")

USAGE = ("usage: l3-embed {audio,image,video} INPUTS... --model=PATH "
         "--output_dir=DIR [--hop_seconds=0.1] [--center] [--batch_size=32] "
         "[--embedding={512,6144,8192}] [--overwrite]")


def main(argv):
  if len(argv) < 3 or argv[1] not in embed_files.KINDS:
    raise app.UsageError(USAGE)
  kind, inputs = argv[1], argv[2:]
  embedding = int(_EMBEDDING.value) if _EMBEDDING.value else None
  try:
    embed_files.check_embedding(kind, embedding)
    embedder = embed_lib.Embedder.load(_MODEL.value, _COMPUTE_DTYPE.value)
  except (ValueError, FileNotFoundError) as e:
    sys.exit(f"l3-embed: {e}")
  summary = embed_files.embed_files(
      embedder, kind, inputs, _OUTPUT_DIR.value, overwrite=_OVERWRITE.value,
      progress=_PROGRESS.value, hop_seconds=_HOP.value, center=_CENTER.value,
      embedding=embedding, batch_size=_BATCH.value)
  print(f"l3-embed {kind}: {summary}", file=sys.stderr)
  for path, reason in summary.failed:
    print(f"  failed: {path}: {reason}", file=sys.stderr)
  return 1 if summary.failed else 0


def run():
  """Console-script entry point (`l3-embed`)."""
  app.run(main)


if __name__ == "__main__":
  run()
