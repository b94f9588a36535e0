"""`l3-search`: cross-modal search over a video collection (AVE-Net models).

  l3-search index VIDEOS_DIR --model=EXPORT --index=INDEX_DIR [--hop_seconds=0.5]
  l3-search query INDEX_DIR (--image=x.jpg | --audio=y.wav |
                             --video=z.mp4 [--at_seconds=t]
                             [--video_modality=image|audio])
                            [--k=10] [--modality=audio|image] [--json]

`index` embeds every sound window and frame of every video under VIDEOS_DIR
(recursively) into the shared space of an AVE-Net export and adds them to
an ANN index with their file, modality and time (`l3_tf.serving.search_index`);
rerunning it skips files already indexed, so an interrupted run resumes and
new videos are added. Unreadable files are skipped and listed (exit 1).
`query` prints the k nearest items (file, time, distance) as a table, or
JSON; `--modality` keeps one modality (default: both). The model is the
one the index was built with (`--model` overrides it).
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import json
import sys

from absl import app
from absl import flags

from experiments import cli
from l3_tf.serving import embed as embed_lib
from l3_tf.serving import search_index

_MODEL = flags.DEFINE_string("model", None, "an AVE-Net SavedModel (or "
                             "training workdir); query: default the index's")
_INDEX = flags.DEFINE_string("index", None, "index: the index folder")
_HOP = flags.DEFINE_float("hop_seconds", 0.5, "index: time between windows")
_BATCH = flags.DEFINE_integer("batch_size", 32, "inputs per network call")
_PROGRESS = flags.DEFINE_bool("progress", True, "index: show a progress bar")
_IMAGE = flags.DEFINE_string("image", None, "query: an image file")
_AUDIO = flags.DEFINE_string("audio", None, "query: a sound file")
_VIDEO = flags.DEFINE_string("video", None, "query: a video file")
_AT = flags.DEFINE_float("at_seconds", 0.0, "query: time in --audio/--video")
_VIDEO_MODALITY = flags.DEFINE_enum(
    "video_modality", "image", list(search_index.MODALITIES),
    "query: a --video queries with its frame or its sound at --at_seconds")
_K = flags.DEFINE_integer("k", 10, "query: number of results")
_MODALITY = flags.DEFINE_enum("modality", None, list(search_index.MODALITIES),
                              "query: search only this modality")
_JSON = flags.DEFINE_bool("json", False, "query: print JSON")

USAGE = ("usage: l3-search index VIDEOS_DIR --model=EXPORT --index=INDEX_DIR "
         "| l3-search query INDEX_DIR (--image=F | --audio=F | --video=F "
         "[--at_seconds=T]) [--k=10] [--modality=audio|image] [--json]")


def _index(videos_dir: str) -> int:
  if not _MODEL.value or not _INDEX.value:
    raise app.UsageError("index needs --model and --index\n" + USAGE)
  embedder = embed_lib.Embedder.load(_MODEL.value)
  summary = search_index.index_videos(
      embedder, videos_dir, _INDEX.value, _MODEL.value,
      hop_seconds=_HOP.value, batch_size=_BATCH.value,
      progress=_PROGRESS.value)
  print(f"l3-search index: {summary}", file=sys.stderr)
  for path, reason in summary.failed:
    print(f"  failed: {path}: {reason}", file=sys.stderr)
  return 1 if summary.failed else 0


def _query(index_path: str) -> int:
  searcher = search_index.Searcher(index_path)
  embedder = embed_lib.Embedder.load(_MODEL.value or searcher.info["model"])
  vector, query_modality = search_index.query_vector(
      embedder, image=_IMAGE.value, audio=_AUDIO.value, video=_VIDEO.value,
      at_seconds=_AT.value, video_modality=_VIDEO_MODALITY.value)
  hits = searcher.search(vector, _K.value, _MODALITY.value)
  if _JSON.value:
    print(json.dumps({"query_modality": query_modality,
                      "hits": [hit.as_dict() for hit in hits]}, indent=1))
  else:
    print(search_index.format_table(hits))
  return 0


def main(argv):
  if len(argv) != 3 or argv[1] not in ("index", "query"):
    raise app.UsageError(USAGE)
  try:
    return _index(argv[2]) if argv[1] == "index" else _query(argv[2])
  except (ValueError, FileNotFoundError, ImportError) as e:
    # SearchIndexError and media.MediaError are ValueErrors.
    sys.exit(f"l3-search: {e}")


def run():
  """Console-script entry point (`l3-search`)."""
  cli.run(main)


if __name__ == "__main__":
  run()
