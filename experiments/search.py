"""`l3-search`: cross-modal search over a video collection (AVE-Net models).

  l3-search index VIDEOS_DIR --model=EXPORT --index=INDEX_DIR [--hop_seconds=0.5]
                  [--runner=NAME [--beam_options='...']]
  l3-search index --from_embeddings=DIR --model=EXPORT --index=INDEX_DIR
  l3-search query INDEX_DIR (--image=x.jpg | --audio=y.wav |
                             --video=z.mp4 [--at_seconds=t]
                             [--video_modality=image|audio])
                            [--k=10] [--modality=audio|image] [--json]

`index` embeds every sound window and frame of every video under VIDEOS_DIR
(recursively) into the shared space of an AVE-Net export and adds them to
an ANN index with their file, modality and time (`l3_tf.serving.search_index`);
rerunning it skips files already indexed, so an interrupted run resumes and
new videos are added. Unreadable files are skipped and listed (exit 1).
With --runner (DirectRunner, DataflowRunner, ...) the embedding runs as
the Apache Beam pipeline of `l3-embed --runner` (`l3_tf/serving/embed_beam.py`),
which writes one Parquet shard per video to INDEX_DIR/embeddings/; the index
is then built from the shards here. --from_embeddings=DIR builds (or adds
to) an index from `l3-embed video ... --embedding=shared --format=parquet`
outputs made earlier with the same model and hop: embed once, index often.
`query` prints the k nearest items (file, time, distance) as a table, or
JSON; `--modality` keeps one modality (default: both). The model is the
one the index was built with (`--model` overrides it).
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import json
import sys

from absl import app
from absl import flags

from experiments import beam_flags
from experiments import cli
from l3_tf.serving import embed as embed_lib
from l3_tf.serving import index_store
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
    "video_modality", "image", list(index_store.MODALITIES),
    "query: a --video queries with its frame or its sound at --at_seconds")
_K = flags.DEFINE_integer("k", 10, "query: number of results")
_MODALITY = flags.DEFINE_enum("modality", None, list(index_store.MODALITIES),
                              "query: search only this modality")
_JSON = flags.DEFINE_bool("json", False, "query: print JSON")
_FROM_EMBEDDINGS = flags.DEFINE_string(
    "from_embeddings", None, "index: build from l3-embed Parquet outputs "
    "(--embedding=shared) in this folder instead of embedding videos")

USAGE = ("usage: l3-search index VIDEOS_DIR --model=EXPORT --index=INDEX_DIR "
         "[--runner=NAME [--beam_options='...']] | l3-search index "
         "--from_embeddings=DIR --model=EXPORT --index=INDEX_DIR "
         "| l3-search query INDEX_DIR (--image=F | --audio=F | --video=F "
         "[--at_seconds=T]) [--k=10] [--modality=audio|image] [--json]")


def _index(videos_dir: str | None) -> int:
  if not _MODEL.value or not _INDEX.value:
    raise app.UsageError("index needs --model and --index\n" + USAGE)
  if (videos_dir is None) == (_FROM_EMBEDDINGS.value is None):
    raise app.UsageError("index takes VIDEOS_DIR or --from_embeddings=DIR "
                         "(one of the two)\n" + USAGE)
  if beam_flags.RUNNER.value and _FROM_EMBEDDINGS.value:
    raise app.UsageError("--runner embeds videos; --from_embeddings reads "
                         "embeddings made earlier: give one of the two")
  embedder = embed_lib.Embedder.load(_MODEL.value)
  if _FROM_EMBEDDINGS.value:
    summary = search_index.index_embeddings(
        embedder, _FROM_EMBEDDINGS.value, _INDEX.value, _MODEL.value,
        hop_seconds=_HOP.value)
  elif beam_flags.RUNNER.value:
    from l3_tf.serving import embed_beam  # pylint: disable=g-import-not-at-top
    summary = embed_beam.index_videos_beam(
        embedder, videos_dir, _INDEX.value, _MODEL.value,
        runner=beam_flags.RUNNER.value,
        beam_options=beam_flags.BEAM_OPTIONS.value,
        hop_seconds=_HOP.value, batch_size=_BATCH.value,
        files_per_batch=beam_flags.FILES_PER_BATCH.value)
  else:
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
  from_embeddings = argv[1:] == ["index"] and _FROM_EMBEDDINGS.value
  if not from_embeddings and (len(argv) != 3 or
                              argv[1] not in ("index", "query")):
    raise app.UsageError(USAGE)
  try:
    if argv[1] == "index":
      return _index(None if from_embeddings else argv[2])
    return _query(argv[2])
  except (ValueError, FileNotFoundError, ImportError) as e:
    # SearchIndexError and media.MediaError are ValueErrors.
    sys.exit(f"l3-search: {e}")


def run():
  """Console-script entry point (`l3-search`)."""
  cli.run(main)


if __name__ == "__main__":
  run()
