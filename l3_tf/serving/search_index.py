"""A searchable collection: every sound window and frame of a folder of
videos in an AVE-Net's shared space, behind an approximate-nearest-neighbour
index. The library behind `l3-search`.

The folder's layout, its files and the ANN: `l3_tf.serving.index_store`.

Indexing is resumable: `files.json` is rewritten (atomically) after every
file, and the raw vectors and items are appended before it, so a run that
stops anywhere resumes where the last completed file left off (a partial
append is cut back to what `files.json` records); the ANN indices are then
brought up to date from the raw vectors. A file whose size and mtime are
unchanged is skipped.
"""

import dataclasses
import os
import pathlib
import sys
import time
from typing import Callable, Iterable, Sequence

import numpy as np
import tqdm

from l3_tf.data import media
from l3_tf.data import media_audio
from l3_tf.data import media_video
from l3_tf.model import finite
from l3_tf.serving import embed as embed_lib
from l3_tf.serving import embed_files
from l3_tf.serving import embed_inputs
from l3_tf.serving import embedding_storage
from l3_tf.serving import index_store

@dataclasses.dataclass
class Hit:
  """One search result: the item and its Euclidean `distance` (in [0, 2])."""

  file: str
  modality: str
  time: float
  distance: float

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)


@dataclasses.dataclass
class IndexSummary:
  """What an `index_videos` run did."""

  indexed: list[str] = dataclasses.field(default_factory=list)
  skipped: list[str] = dataclasses.field(default_factory=list)
  failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)
  vectors_added: int = 0
  seconds: float = 0.0
  windows_per_second: float | None = None

  def __str__(self) -> str:
    rate = (f", {self.windows_per_second:.1f} windows/s"
            if self.windows_per_second else "")
    return (f"{len(self.indexed)} indexed, {len(self.skipped)} skipped "
            f"(already indexed), {len(self.failed)} failed; "
            f"{self.vectors_added} vectors added in {self.seconds:.1f} s{rate}")


def video_files(folder: str) -> list[str]:
  """Media with a picture under `folder`, recursively, in a stable order
  (hidden folders and files left out)."""
  root = pathlib.Path(folder)
  if not root.is_dir():
    raise index_store.SearchIndexError(f"videos folder {folder!r} is not a directory")
  return [str(p) for p in sorted(root.rglob("*")) if p.is_file()
          and p.suffix.lower() in media.VIDEO_EXTENSIONS
          and not any(part.startswith(".") for part in p.relative_to(root).parts)]


def _sync_ann(index_dir: index_store.IndexDir, info: dict, items: list[index_store.Item]) -> None:
  """Adds to each modality's ANN index the vectors it does not hold yet."""
  vectors = index_dir.vectors(info["dim"])
  modality = np.array([item.modality for item in items])
  settings = index_store.AnnSettings(**info["ann"])
  for name in index_store.MODALITIES:
    path = index_dir.ann_path(name)
    ann = index_store.new_ann(info["dim"], settings)
    if os.path.exists(path):
      ann.load(path)
    ids = np.flatnonzero(modality == name)
    new = ids[len(ann):] if len(ann) <= ids.size else None
    if new is None:  # more vectors than the raw file: rebuild
      ann = index_store.new_ann(info["dim"], settings)
      new = ids
    if new.size:
      ann.add(new.astype(np.int64), np.asarray(vectors[new]), threads=0)
    ann.save(path)


def open_index(embedder: embed_lib.Embedder, index_path: str, model: str,
               hop_seconds: float,
               settings: index_store.AnnSettings = index_store.AnnSettings()
               ) -> tuple["index_store.IndexDir", dict, dict]:
  """The index at `index_path`, created if absent, checked if present, and
  cut back to what its `files.json` records: (index_dir, info, state).

  Raises:
    index_store.SearchIndexError: the index was built with another model, size or hop.
    ValueError: the model has no shared space (an L3 export), a bad hop.
  """
  from l3_tf.serving import export as export_lib  # pylint: disable=g-import-not-at-top

  if export_lib.SHARED_AUDIO_EMBEDDING not in embedder.embedding_sizes:
    raise ValueError(f"{model}: {export_lib.NO_SHARED_SPACE}")
  dim = embedder.embedding_sizes[export_lib.SHARED_AUDIO_EMBEDDING][
      export_lib.SHARED_OUTPUT]
  embed_inputs.hop_samples(hop_seconds, embedder.audio_params)  # validates
  index_dir = index_store.IndexDir(index_path)
  if index_dir.exists():
    info = index_dir.info()
    for key, value in (("model", os.path.abspath(model)), ("dim", dim),
                       ("hop_seconds", hop_seconds)):
      if info[key] != value:
        raise index_store.SearchIndexError(
            f"index {index_path} was built with {key}={info[key]!r}, not "
            f"{value!r}: use another --index, or the same {key}")
  else:
    info = index_dir.create(model, dim, hop_seconds, settings)
  state = index_dir.state()
  index_dir.truncate_to(state, dim)
  return index_dir, info, state


def _stamp(path: str) -> dict | None:
  """Size and mtime of a local file (how a changed file is noticed)."""
  try:
    stat = os.stat(path)
  except OSError:
    return None
  return {"size": stat.st_size, "mtime": stat.st_mtime}


def _is_indexed(state: dict, key: str, stamp: dict | None) -> bool:
  done = state["files"].get(key)
  return bool(done and stamp and done["size"] == stamp["size"] and
              done["mtime"] == stamp["mtime"])


def needs_reindex(state: dict, path: str) -> bool:
  """Whether a video the index holds has changed (size or mtime) since."""
  key = os.path.abspath(path)
  return key in state["files"] and not _is_indexed(state, key, _stamp(path))


def _add_file(index_dir: index_store.IndexDir, state: dict, key: str, stamp: dict,
              audio: np.ndarray, image: np.ndarray,
              timestamps: np.ndarray) -> int:
  """Appends one file's vectors (its audio windows, then its frames, at
  the shared timestamps) and records it; returns how many were added."""
  items = ([index_store.Item(key, index_store.AUDIO, float(t)) for t in timestamps]
           + [index_store.Item(key, index_store.IMAGE, float(t)) for t in timestamps])
  index_dir.append(np.concatenate([audio, image]), items)
  state["files"][key] = {**stamp, "first_id": state["num_vectors"],
                         "count": len(items)}
  state["failed"].pop(key, None)
  state["num_vectors"] += len(items)
  index_store.write_json(index_dir.file(index_store.FILES_FILE), state)
  return len(items)


def _record_failure(index_dir: index_store.IndexDir, state: dict, summary: "IndexSummary",
                    path: str, reason: str, report: Callable) -> None:
  summary.failed.append((path, reason))
  state["failed"][os.path.abspath(path) if "://" not in path else path] = (
      reason)
  report(f"FAILED {path}: {reason}")
  index_store.write_json(index_dir.file(index_store.FILES_FILE), state)


def _finish(index_dir: index_store.IndexDir, info: dict, summary: "IndexSummary",
            started: float, embed_seconds: float) -> "IndexSummary":
  _sync_ann(index_dir, info, index_dir.items())
  summary.seconds = time.perf_counter() - started
  if summary.vectors_added and embed_seconds > 0:
    summary.windows_per_second = summary.vectors_added / 2 / embed_seconds
  return summary


def index_videos(embedder: embed_lib.Embedder, videos_dir: str,
                 index_path: str, model: str, *,
                 hop_seconds: float = 0.5, batch_size: int = 32,
                 settings: index_store.AnnSettings = index_store.AnnSettings(), progress: bool = True,
                 report: Callable[[str], None] | None = None) -> IndexSummary:
  """Embeds every video under `videos_dir` into the index at `index_path`.

  Args:
    embedder: an AVE-Net `Embedder` (it needs a shared space).
    videos_dir: folder searched recursively for `media.VIDEO_EXTENSIONS`.
    index_path: the index folder, created if absent, resumed otherwise.
    model: the model's path, recorded (a resumed index must use the same).
    hop_seconds: time between consecutive windows / frames.
    batch_size: inputs per network call.
    settings: HNSW settings of a new index.
    progress: progress bar on stderr.
    report: called with one line per failed file (default: stderr).

  Returns:
    The IndexSummary.

  Raises:
    index_store.SearchIndexError: the index was built with another model or hop.
    ValueError: the model has no shared space (an L3 export).
    finite.NonFiniteError: the model computes non-finite embeddings.
  """
  report = report or (lambda line: tqdm.tqdm.write(line, file=sys.stderr))
  index_dir, info, state = open_index(embedder, index_path, model,
                                      hop_seconds, settings)
  summary = IndexSummary()
  started = time.perf_counter()
  files = video_files(videos_dir)
  bar = tqdm.tqdm(files, desc="l3-search index", unit="file",
                  disable=not progress, file=sys.stderr)
  for path in bar:
    key, stamp = os.path.abspath(path), _stamp(path)
    if _is_indexed(state, key, stamp):
      summary.skipped.append(path)
      continue
    if key in state["files"]:  # changed since: its old vectors stay, stale
      report(f"CHANGED {path}: indexed again (its earlier vectors remain)")
    try:
      # Both in the shared space, at the timestamps of the sound windows.
      audio, image, timestamps = embedder.embed_video(
          path, hop_seconds=hop_seconds, audio_embedding=embed_lib.SHARED,
          image_embedding=embed_lib.SHARED, batch_size=batch_size)
    except finite.NonFiniteError:
      raise  # the model's fault, not the file's: nothing is added
    except Exception as e:  # one bad file must not end the run
      _record_failure(index_dir, state, summary, path,
                      f"{type(e).__name__}: {e}", report)
      continue
    summary.vectors_added += _add_file(index_dir, state, key, stamp, audio,
                                       image, timestamps)
    summary.indexed.append(path)
    bar.set_postfix(vectors=state["num_vectors"])
  return _finish(index_dir, info, summary, started,
                 time.perf_counter() - started)


def _shard_files(embeddings_dir: str) -> list[pathlib.Path]:
  root = pathlib.Path(embeddings_dir)
  if not root.is_dir():
    raise index_store.SearchIndexError(f"embeddings folder {embeddings_dir!r} is not a "
                           "directory")
  shards = [p for p in sorted(root.rglob("*.parquet")) if p.is_file() and
            not any(part.startswith(".") for part in p.relative_to(root).parts)]
  if not shards:
    others = sorted(root.rglob("*.npz"))
    hint = (f" ({others[0]} and others are .npz, which do not record their "
            "source file)") if others else ""
    raise index_store.SearchIndexError(
        f"{embeddings_dir}: no l3-embed Parquet files{hint}; embed with "
        "`l3-embed video VIDEOS --embedding=shared --format=parquet`")
  return shards


def _shard_sources(path: pathlib.Path, dim: int, hop_seconds: float):
  """{source file: {modality: (timestamps [T], vectors [T, dim])}} of one
  l3-embed Parquet file, checked to be shared-space vectors at the hop."""
  columns = embedding_storage.read_parquet(str(path))
  vectors = columns["embedding"]
  if isinstance(vectors, list) or (vectors.size and vectors.shape[1] != dim):
    sizes = sorted({len(v) for v in vectors})
    raise index_store.SearchIndexError(
        f"{path}: embeddings of {'/'.join(map(str, sizes))} values, the "
        f"index's shared space has {dim}: embed with --embedding=shared and "
        "this index's model")
  norms = np.linalg.norm(vectors, axis=1)
  if vectors.size and not np.allclose(norms, 1.0, atol=1e-3):
    raise index_store.SearchIndexError(
        f"{path}: vector norms {norms.min():.4g}..{norms.max():.4g}, not the "
        "unit vectors of a shared space: embed with --embedding=shared")
  sources = {}
  for source in dict.fromkeys(columns["file"]):  # first-seen order
    rows = columns["file"] == source
    for modality in index_store.MODALITIES:
      chosen = np.flatnonzero(rows & (columns["modality"] == modality))
      if not chosen.size:
        continue
      times = columns["timestamp"][chosen]
      order = np.argsort(times, kind="stable")
      times, chosen = times[order], chosen[order]
      if times.size > 1 and not np.allclose(np.diff(times), hop_seconds,
                                            atol=1e-6):
        raise index_store.SearchIndexError(
            f"{path}: {source} was embedded every {np.diff(times)[0]:g} s, "
            f"not every hop_seconds={hop_seconds:g} s of this index")
      sources.setdefault(source, {})[modality] = (times, vectors[chosen])
  return sources


def read_failures(embeddings_dir: str) -> list[tuple[str, str]]:
  """The (input, reason) lines of l3-embed's video failure list, if any."""
  path = embed_files.failures_path(embeddings_dir, "video")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    lines = f.read().splitlines()[1:]
  return [tuple(line.split("\t", 1)) for line in lines if "\t" in line]


def index_embeddings(embedder: embed_lib.Embedder, embeddings_dir: str,
                     index_path: str, model: str, *,
                     hop_seconds: float = 0.5,
                     settings: index_store.AnnSettings = index_store.AnnSettings(),
                     failed: Sequence[tuple[str, str]] | None = None,
                     report: Callable[[str], None] | None = None
                     ) -> IndexSummary:
  """Builds (or adds to) the index at `index_path` from embeddings written
  earlier by `l3-embed video ... --embedding=shared --format=parquet`
  (combined or split), so a collection is embedded once and indexed as
  often as wanted; `l3-search index --runner` writes such shards.

  The index holds what `index_videos` would: per source video (in path
  order), its audio vectors then its image vectors at the shared
  timestamps, keyed by the video's absolute path; a source already indexed
  with the same size and mtime is skipped.

  Args:
    embedder: the AVE-Net the embeddings were made with (its shared size).
    embeddings_dir: folder of l3-embed Parquet files (searched recursively).
    index_path: the index folder, created if absent, added to otherwise.
    model: the model's path, recorded.
    hop_seconds: the hop the embeddings were made with (checked).
    settings: HNSW settings of a new index.
    failed: (input, reason) of videos that could not be embedded, recorded
      in the index; default: l3-embed's failure list in `embeddings_dir`.
    report: called with one line per failed file (default: stderr).

  Raises:
    index_store.SearchIndexError: no Parquet files; vectors of another size, not unit
      norm, or at another hop; an index built with another model or hop.
      (A source with one modality only is listed as failed.)
  """
  report = report or (lambda line: tqdm.tqdm.write(line, file=sys.stderr))
  index_dir, info, state = open_index(embedder, index_path, model,
                                      hop_seconds, settings)
  summary = IndexSummary()
  started = time.perf_counter()
  # A source's modalities may be in two files (split outputs, adjacent in
  # path order): it is added once both are read.
  pending: dict[str, dict] = {}
  for shard in _shard_files(embeddings_dir):
    for source, parts in _shard_sources(shard, info["dim"],
                                        hop_seconds).items():
      pending.setdefault(source, {}).update(parts)
    for source in sorted((s for s, parts in pending.items()
                          if set(parts) == set(index_store.MODALITIES)),
                         key=pathlib.PurePath):
      (times, audio), (image_times, image) = (pending[source][index_store.AUDIO],
                                              pending.pop(source)[index_store.IMAGE])
      if not np.array_equal(times, image_times):
        raise index_store.SearchIndexError(f"{shard}: {source}: its audio and image "
                               "embeddings have different timestamps")
      key = source if "://" in source else os.path.abspath(source)
      stamp = _stamp(source) or {"size": int(times.size), "mtime": None}
      if _is_indexed(state, key, stamp):
        summary.skipped.append(source)
        continue
      if key in state["files"]:
        report(f"CHANGED {source}: indexed again (its earlier vectors "
               "remain)")
      summary.vectors_added += _add_file(index_dir, state, key, stamp, audio,
                                         image, times)
      summary.indexed.append(source)
  for source, parts in pending.items():
    _record_failure(index_dir, state, summary, source,
                    f"only {'/'.join(parts)} embeddings in {embeddings_dir}; "
                    "an index needs both (l3-embed video)", report)
  for path, reason in (read_failures(embeddings_dir) if failed is None
                       else failed):
    _record_failure(index_dir, state, summary, path, reason, report)
  return _finish(index_dir, info, summary, started, 0.0)


class Searcher:
  """A loaded index: `search(vector, k, modality)` -> hits."""

  def __init__(self, index_path: str):
    self.index_dir = index_store.IndexDir(index_path)
    self.info = self.index_dir.info()
    self.items = self.index_dir.items()
    settings = index_store.AnnSettings(**self.info["ann"])
    self._anns = {}
    for name in index_store.MODALITIES:
      path = self.index_dir.ann_path(name)
      if os.path.exists(path):
        ann = index_store.new_ann(self.info["dim"], settings)
        ann.load(path)
        self._anns[name] = ann

  def __len__(self) -> int:
    return sum(len(ann) for ann in self._anns.values())

  def search(self, vector: np.ndarray, k: int = 10,
             modality: str | None = None, exact: bool = False) -> list[Hit]:
    """The k nearest items to a shared-space vector [dim].

    Args:
      vector: float [dim] (an `Embedder.shared_embedding` row).
      k: how many hits.
      modality: "audio" or "image" to search one modality; None: both,
        merged by distance.
      exact: compare with every item (brute force) instead of walking the
        HNSW graph: slower, but the true k nearest, independent of the
        order the items were added in (an HNSW search is approximate and
        two indexes of the same items added in another order may differ).

    Raises:
      ValueError: a bad k, modality or vector size.
    """
    if k < 1:
      raise ValueError(f"k={k} must be >= 1")
    if modality is not None and modality not in index_store.MODALITIES:
      raise ValueError(f"modality={modality!r}; expected one of {index_store.MODALITIES}")
    vector = np.asarray(vector, np.float32).reshape(-1)
    if vector.size != self.info["dim"]:
      raise ValueError(f"query vector has {vector.size} values, the index "
                       f"{self.info['dim']}")
    hits = []
    for name in ([modality] if modality else index_store.MODALITIES):
      ann = self._anns.get(name)
      if ann is None or not len(ann):
        continue
      found = ann.search(vector, min(k, len(ann)), exact=exact)
      for key, squared in zip(found.keys, found.distances):
        item = self.items[int(key)]
        hits.append(Hit(item.file, item.modality, item.time,
                        float(np.sqrt(max(float(squared), 0.0)))))
    hits.sort(key=lambda h: h.distance)
    return hits[:k]


def query_vector(embedder: embed_lib.Embedder, *, image: str | None = None,
                 audio: str | None = None, video: str | None = None,
                 at_seconds: float = 0.0, video_modality: str = index_store.IMAGE
                 ) -> tuple[np.ndarray, str]:
  """The shared-space vector of one query (exactly one of the three).

  Args:
    embedder: the index's model.
    image: an image file (its first frame).
    audio: a sound file (or any file with sound): the 1-second window
      centred on `at_seconds` (zero-padded at the edges).
    video: a video: the frame displayed at `at_seconds` (`video_modality`
      "image") or the sound window centred there ("audio").
    at_seconds: the query time within `audio` / `video`.
    video_modality: which part of a video is the query.

  Returns:
    (vector [dim], "image" or "audio": the query's modality).

  Raises:
    ValueError: not exactly one query, or a bad `video_modality`.
    media.MediaError: an unreadable file.
  """
  given = [x for x in (image, audio, video) if x is not None]
  if len(given) != 1:
    raise ValueError("give exactly one of --image, --audio, --video")
  if video_modality not in index_store.MODALITIES:
    raise ValueError(f"video_modality={video_modality!r}; expected one of "
                     f"{index_store.MODALITIES}")
  if at_seconds < 0:
    raise ValueError(f"at_seconds={at_seconds} must be >= 0")
  if image is not None or (video is not None and video_modality == index_store.IMAGE):
    path = image if image is not None else video
    frames = media_video.frames_at(path, [0.0 if image is not None else at_seconds],
                             short_side=embedder.image_params.resize_short_side)
    return embedder.shared_embedding(images=frames)[0], index_store.IMAGE
  path = audio if audio is not None else video
  params = embedder.audio_params
  waveform = embed_inputs.to_mono(
      media_audio.load_audio(path, sample_rate_hz=params.sample_rate_hz))
  starts = embed_inputs.starts_for_centres(np.array([at_seconds]), params)
  windows = embed_inputs.extract_windows(waveform, starts, params.clip_samples)
  return embedder.shared_embedding(windows=windows)[0], index_store.AUDIO


def format_table(hits: Iterable[Hit]) -> str:
  """Hits as an aligned text table: rank, distance, modality, time, file."""
  lines = [f"{'rank':>4}  {'distance':>8}  {'modality':<8}  {'time_s':>8}  file"]
  for rank, hit in enumerate(hits, start=1):
    lines.append(f"{rank:>4}  {hit.distance:8.4f}  {hit.modality:<8}  "
                 f"{hit.time:8.2f}  {hit.file}")
  return "\n".join(lines)
