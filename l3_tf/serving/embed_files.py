"""Embeds many files into `.npz` or Parquet files: the library behind
`l3-embed`.

Inputs are files, folders and glob patterns (`str`/`os.PathLike` or a list of
them; a single path is one input, never iterated). A file given by name is
always embedded, whatever its extension; folders (searched recursively) and
patterns keep only the extensions of the kind (`EXTENSIONS`), so that side
files (a manifest.csv, a README) are not mistaken for media. A file reached
twice (a folder and a file inside it) is embedded once. A missing path, a
folder without files of the kind or a pattern that matches none is a
`ValueError` naming it, before anything is embedded.

Where outputs go: with `output_dir`, `<folder>/<sub>/<name>.<ext>` ->
`<output_dir>/<sub>/<name><suffix>.npz` (sub-folders kept so that equal
names do not collide) and a file given by name -> `<output_dir>/<name>
<suffix>.npz`; without it, beside each input: `<dir of input>/<name>
<suffix>.npz`. An existing output is skipped unless `overwrite`, file by
file. `output_dir` may be a URL TensorFlow's file systems serve (`gs://`,
and `s3://`, `hdfs://`, `az://` once `l3_tf.platform.filesystems.prepare` has
registered them): outputs are then written through `tf.io.gfile`, each
finished locally and copied up whole, so a crash never leaves a partial
object that a later run would skip as done.

Each `.npz` holds (see `l3_tf.serving.embed` for what a timestamp means):
  audio:  `embedding` float32 [T, D], `timestamps` float64 [T] (window centres)
  image:  `embedding` float32 [1, D], `timestamps` [0.]
  video, `video_output="combined"`: `<name><suffix>.npz` with
          `audio_embedding` [T, Da], `image_embedding` [T, Di] and their
          shared `timestamps` [T];
  video, `video_output="split"`: `<name><suffix>_audio.npz` and
          `<name><suffix>_image.npz`, each with `embedding` and the same
          `timestamps`, so one modality can be recomputed alone.

With `output_format="parquet"` each of these files is a `.parquet` instead,
one row per embedding: `file` (the input path), `timestamp` (float64 s),
`modality` ("audio" / "image"), `embedding` (list<float32>). All outputs share
that schema, so `pyarrow.dataset.dataset(output_dir)` queries millions of
windows without loading them.

A run ends with a `RunSummary`; the inputs that failed are listed, with the
reason, in `<output_dir or .>/l3-embed_failed_<kind>.tsv`.
"""

import contextlib
import dataclasses
import glob
import os
import pathlib
import sys
import tempfile
import time
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf
import tqdm

from l3_tf.data import media
from l3_tf.model import finite
from l3_tf.platform import filesystems
from l3_tf.serving import embed as embed_lib
from l3_tf.serving import embed_inputs
from l3_tf.serving import export as export_lib

KINDS = ("audio", "image", "video")
VIDEO_OUTPUTS = ("combined", "split")
FORMATS = ("npz", "parquet")
_IMAGE = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# Audio mode also reads the sound track of videos found in folders.
EXTENSIONS = {"audio": media.AUDIO_EXTENSIONS + media.VIDEO_EXTENSIONS,
              "image": _IMAGE, "video": media.VIDEO_EXTENSIONS}
# `embedding` values per kind; for video, 512 is both towers' pool4, 6144,
# 8192 and "transfer" both transfer taps (6144-d audio, 8192-d image).
# "shared": an AVE-Net's shared audio-image space (`l3-search index
# --from_embeddings` reads video embeddings of it).
EMBEDDINGS = {"audio": (512, 6144, embed_lib.TRANSFER, embed_lib.SHARED),
              "image": (512, 8192, embed_lib.TRANSFER, embed_lib.SHARED),
              "video": (512, 6144, 8192, embed_lib.TRANSFER,
                        embed_lib.SHARED)}
FAILED_TSV = "l3-embed_failed_{kind}.tsv"


@dataclasses.dataclass(frozen=True)
class Job:
  """One input file and its outputs: {part: path}, part in "audio", "image"
  (one modality) or "video" (the combined file)."""

  input_path: str
  outputs: dict


DONE, SKIPPED, FAILED = "done", "skipped", "failed"


@dataclasses.dataclass
class Outcome:
  """What became of one input: `status` DONE (its `written` outputs hold
  `windows` timestamps), SKIPPED (its outputs existed) or FAILED (`reason`)."""

  input_path: str
  status: str
  written: list[str] = dataclasses.field(default_factory=list)
  windows: int = 0
  reason: str = ""


@dataclasses.dataclass
class RunSummary:
  """What a run did: inputs done, skipped and failed (with the reason),
  outputs written, windows (timestamps) embedded, wall-clock seconds."""

  kind: str = ""
  done: list[str] = dataclasses.field(default_factory=list)
  written: list[str] = dataclasses.field(default_factory=list)
  skipped: list[str] = dataclasses.field(default_factory=list)
  failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)
  windows: int = 0
  seconds: float = 0.0
  failed_tsv: str | None = None

  def add(self, outcome: "Outcome") -> None:
    """Counts what happened to one input."""
    if outcome.status == SKIPPED:
      self.skipped.append(outcome.input_path)
    elif outcome.status == FAILED:
      self.failed.append((outcome.input_path, outcome.reason))
    else:
      self.done.append(outcome.input_path)
      self.written += outcome.written
      self.windows += outcome.windows

  def __str__(self) -> str:
    failed = f"{len(self.failed)} failed"
    if self.failed_tsv:
      failed += f" (listed in {self.failed_tsv})"
    return (f"l3-embed {self.kind}: {len(self.done)} files done, "
            f"{len(self.skipped)} skipped (output exists), {failed}, "
            f"{self.windows} windows, {self.seconds:.1f} s")


def normalize_embedding(kind: str, embedding) -> int | str | None:
  """The `embedding` value of a kind (an int size, "transfer" or None).

  Raises:
    ValueError: not one of `EMBEDDINGS[kind]` (they are listed).
  """
  if embedding is None:
    return None
  if isinstance(embedding, str) and embedding.isdigit():
    embedding = int(embedding)
  return embed_inputs.check_choice("embedding", embedding, EMBEDDINGS[kind])


def check_embedding(kind: str, embedding) -> None:
  """Raises ValueError unless `embedding` is valid for `kind` (None is)."""
  normalize_embedding(embed_inputs.check_choice("kind", kind, KINDS), embedding)


def check_run_options(kind: str, *, video_output: str = "combined",
                      output_format: str = "npz", suffix: str = "",
                      embedding=None, hop_seconds: float | None = None,
                      center: bool | None = None,
                      batch_size: int | None = None) -> None:
  """Every closed-set argument of a run, checked in one go (ValueError
  naming the first bad one and its allowed values)."""
  embed_inputs.check_choice("kind", kind, KINDS)
  embed_inputs.check_choice("video_output", video_output, VIDEO_OUTPUTS)
  embed_inputs.check_choice("format", output_format, FORMATS)
  if not isinstance(suffix, str) or "/" in suffix or os.sep in suffix:
    raise ValueError(f"suffix={suffix!r}; expected text without a path "
                     "separator")
  normalize_embedding(kind, embedding)
  embed_inputs.check_options(hop_seconds=hop_seconds, center=center,
                          batch_size=batch_size)


def _kind_files(folder: pathlib.Path, kind: str) -> list[pathlib.Path]:
  """Files of the kind under `folder`, recursively, hidden ones left out."""
  return sorted(
      p for p in folder.rglob("*")
      if p.is_file() and p.suffix.lower() in EXTENSIONS[kind] and
      not any(part.startswith(".") for part in p.relative_to(folder).parts))


def resolve_inputs(inputs, kind: str
                   ) -> list[tuple[pathlib.Path, pathlib.Path | None]]:
  """The files to embed, each once, as (file, path relative to the folder
  it was found in, or None for a file given by name or pattern).

  Raises:
    ValueError: a path that does not exist, a folder without files of the
      kind, a pattern that matches none; no input at all.
  """
  embed_inputs.check_choice("kind", kind, KINDS)
  if isinstance(inputs, (str, os.PathLike)):
    inputs = [inputs]  # one path, not its characters
  inputs = [os.fspath(item) for item in inputs]
  if not inputs:
    raise ValueError("inputs=[]: give at least one file, folder or pattern")
  found, seen = [], set()

  def add(file: pathlib.Path, relative: pathlib.Path | None):
    key = os.path.realpath(file)
    if key not in seen:
      seen.add(key)
      found.append((file, relative))

  extensions = " ".join(EXTENSIONS[kind])
  for item in inputs:
    path = pathlib.Path(item)
    if path.is_dir():
      files = _kind_files(path, kind)
      if not files:
        raise ValueError(f"{item}: no {kind} files in this folder "
                         f"(extensions {extensions})")
      for file in files:
        add(file, file.relative_to(path))
    elif path.is_file():
      add(path, None)
    elif glob.has_magic(item):
      matches = [pathlib.Path(m) for m in sorted(glob.glob(item,
                                                           recursive=True))]
      files = [m for m in matches
               if m.is_file() and m.suffix.lower() in EXTENSIONS[kind]]
      for folder in (m for m in matches if m.is_dir()):
        files += _kind_files(folder, kind)
      if not files:
        raise ValueError(f"{item}: the pattern matches no {kind} file "
                         f"(extensions {extensions})")
      for file in files:
        add(file, None)
    else:
      raise ValueError(f"{item}: no such file or folder")
  return found


def output_paths(file: pathlib.Path | str, relative: pathlib.PurePath | None,
                 output_dir: str | None, kind: str, *,
                 suffix: str = "", video_output: str = "combined",
                 output_format: str = "npz") -> dict[str, str]:
  """{part: output path} of one input (layout in the module docstring); the
  input may be a URL (`l3_tf.serving.embed_beam` lists them)."""
  if filesystems.is_url(file):  # pathlib folds "s3://b" to "s3:/b"
    folder, name = os.fspath(file).rsplit("/", 1)
  else:
    folder, name = pathlib.Path(file).parent, pathlib.Path(file).name
  if output_dir is None:
    stem = pathlib.PurePath(name).stem
    base = f"{folder}/{stem}" if filesystems.is_url(file) else folder / stem
  else:
    inside = pathlib.PurePath(relative or name)
    inside = inside.with_name(pathlib.PurePath(inside.name).stem)
    if filesystems.is_url(output_dir):  # pathlib folds "s3://b" to "s3:/b"
      base = f"{output_dir.rstrip('/')}/{inside.as_posix()}"
    else:
      base = pathlib.Path(output_dir) / inside
  base = f"{base}{suffix}"
  if kind == "video" and video_output == "split":
    return {part: f"{base}_{part}.{output_format}"
            for part in ("audio", "image")}
  return {kind: f"{base}.{output_format}"}


def find_jobs(inputs, kind: str, output_dir: str | None, *,
              suffix: str = "", video_output: str = "combined",
              output_format: str = "npz"
              ) -> tuple[list[Job], list[tuple[str, str]]]:
  """The files to embed and their outputs; plus inputs that cannot be.

  Returns:
    (jobs in a stable order, [(input, reason)] for inputs whose output
    another input already claims).

  Raises:
    ValueError: see `resolve_inputs`.
  """
  return jobs_of(resolve_inputs(inputs, kind), kind, output_dir,
                 suffix=suffix, video_output=video_output,
                 output_format=output_format)


def jobs_of(resolved, kind: str, output_dir: str | None, *,
            suffix: str = "", video_output: str = "combined",
            output_format: str = "npz"
            ) -> tuple[list[Job], list[tuple[str, str]]]:
  """`find_jobs` of inputs already resolved to (file, relative) pairs (as
  `resolve_inputs` returns them): the first input to claim an output wins."""
  jobs, problems, claimed = [], [], {}
  for file, relative in resolved:
    outputs = output_paths(file, relative, output_dir, kind, suffix=suffix,
                           video_output=video_output,
                           output_format=output_format)
    taken = [p for p in outputs.values() if p in claimed]
    if taken:
      problems.append((str(file), f"its output {taken[0]} is also the output "
                       f"of {claimed[taken[0]]}; embed one of them separately"))
      continue
    claimed.update({p: str(file) for p in outputs.values()})
    jobs.append(Job(str(file), outputs))
  return jobs, problems


def check_parquet() -> None:
  """Raises ImportError (naming the package) where pyarrow is missing: an
  error before the first file of a --format=parquet run."""
  _pyarrow()


def _pyarrow():
  """pyarrow and pyarrow.parquet, imported only for --format=parquet."""
  try:
    import pyarrow  # pylint: disable=g-import-not-at-top
    import pyarrow.parquet  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("format='parquet' needs pyarrow: pip install "
                      "'pyarrow>=14,<27'") from e
  return pyarrow


def _rows(modalities: dict[str, np.ndarray], timestamps: np.ndarray,
          source: str):
  """A pyarrow Table, one row per (modality, timestamp)."""
  pa = _pyarrow()
  names, times, vectors = [], [], []
  for modality, embedding in modalities.items():  # [T, D]
    names += [modality] * embedding.shape[0]
    times.append(timestamps)
    vectors.append(embedding)
  lengths = [v.shape[1] for v in vectors for _ in range(v.shape[0])]
  offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
  values = np.concatenate([v.reshape(-1) for v in vectors]).astype(np.float32)
  return pa.table({
      "file": pa.array([source] * len(names), pa.string()),
      "timestamp": pa.array(np.concatenate(times), pa.float64()),
      "modality": pa.array(names, pa.string()),
      "embedding": pa.ListArray.from_arrays(pa.array(offsets),
                                            pa.array(values, pa.float32())),
  })


def read_parquet(path: str) -> dict[str, np.ndarray]:
  """The columns of an l3-embed Parquet file as arrays (`embedding` stacked
  [rows, D] when all rows have one size, as in a one-modality file)."""
  table = _pyarrow().parquet.read_table(path)
  columns = {name: table.column(name).to_numpy(zero_copy_only=False)
             for name in ("file", "timestamp", "modality")}
  vectors = table.column("embedding").to_pylist()
  if len({len(v) for v in vectors}) <= 1:
    columns["embedding"] = np.asarray(vectors, np.float32).reshape(
        len(vectors), -1)
  else:
    columns["embedding"] = [np.asarray(v, np.float32) for v in vectors]
  return columns


class Storage:
  """How outputs and the failure list reach their place: `tf.io.gfile`,
  which serves local paths and the URLs TensorFlow knows (`gs://`, and
  `s3://`... once `l3_tf.platform.filesystems.prepare` registered them).
  The Beam pipeline (`l3_tf.serving.embed_beam`) passes Beam's file systems instead."""

  def exists(self, path: str) -> bool:
    return tf.io.gfile.exists(path)

  def remove(self, path: str) -> None:
    tf.io.gfile.remove(path)

  def write_text(self, path: str, text: str) -> None:
    tf.io.gfile.makedirs(path.rsplit("/", 1)[0] if filesystems.is_url(path)
                         else os.path.dirname(path) or ".")
    with tf.io.gfile.GFile(path, "w") as f:
      f.write(text)

  def upload(self, local: str, path: str) -> None:
    """Copies the finished local file `local` to the URL `path`, whole."""
    tf.io.gfile.makedirs(path.rsplit("/", 1)[0])
    tf.io.gfile.copy(local, path, overwrite=True)


GFILE = Storage()


def _save(path: str, part: str, arrays: dict[str, np.ndarray],
          source: str, storage: Storage = GFILE) -> None:
  """Writes one output atomically: a crash never leaves a file that a later
  run would take as done. A URL's object is finished in a local temporary
  file first and copied up whole (`storage.upload`)."""
  if filesystems.is_url(path):
    with tempfile.TemporaryDirectory(prefix="l3-embed-") as local:
      staged = os.path.join(local, path.rsplit("/", 1)[-1])
      _save(staged, part, arrays, source)
      storage.upload(staged, path)
    return
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  temporary = f"{path}.partial"
  if path.endswith(".parquet"):
    if part == "video":
      modalities = {"audio": arrays["audio_embedding"],
                    "image": arrays["image_embedding"]}
    else:
      modalities = {part: arrays["embedding"]}
    _pyarrow().parquet.write_table(
        _rows(modalities, arrays["timestamps"], source), temporary)
  else:
    with open(temporary, "wb") as f:
      np.savez(f, **arrays)
  os.replace(temporary, path)


def _tower_embeddings(embedding) -> tuple:
  """(audio, image) `Embedder` embedding of a normalized `embedding`."""
  if embedding == embed_lib.SHARED:
    return embed_lib.SHARED, embed_lib.SHARED
  return (512, 512) if embedding == 512 else (6144, 8192)


def _one(result) -> dict[str, np.ndarray]:
  return {"embedding": result.embedding, "timestamps": result.timestamps}


def _video_parts(parts, result) -> dict[str, dict[str, np.ndarray]]:
  if "video" in parts:
    return {"video": {"audio_embedding": result.audio,
                      "image_embedding": result.image,
                      "timestamps": result.timestamps}}
  return {"audio": {"embedding": result.audio,
                    "timestamps": result.timestamps},
          "image": {"embedding": result.image,
                    "timestamps": result.timestamps}}


def embed_batch(embedder: embed_lib.Embedder, kind: str,
                requests: Sequence[tuple[str, Sequence[str] | None]], *,
                hop_seconds: float = embed_lib.DEFAULT_HOP_SECONDS,
                center: bool = True, embedding=None,
                batch_size: int = embed_lib.DEFAULT_BATCH_SIZE
                ) -> list[dict | Exception]:
  """The arrays of several inputs' outputs, their windows (frames, images)
  sharing network calls.

  Args:
    requests: (input path, parts) per input; parts as in `embed_one`.
    hop_seconds, center, embedding, batch_size: as in `embed_one`.

  Returns:
    Per request, in order: {part: {name: array}}, or the exception that
    kept that input from being embedded.

  Raises:
    ValueError: an argument outside its values (before any decoding).
  """
  embedding = normalize_embedding(kind, embedding)
  audio_size, image_size = _tower_embeddings(embedding)
  requests = [(os.fspath(path), tuple(parts or (kind,)))
              for path, parts in requests]
  results: list = [None] * len(requests)
  windows = dict(hop_seconds=hop_seconds, center=center,
                 batch_size=batch_size)

  def chosen(test) -> list[int]:
    return [i for i, (_, parts) in enumerate(requests) if test(parts)]

  def fill(indices, outcomes, convert):
    for i, outcome in zip(indices, outcomes):
      results[i] = (outcome if isinstance(outcome, Exception)
                    else convert(requests[i][1], outcome))

  def paths(indices):
    return [requests[i][0] for i in indices]

  if kind == "audio":
    every = chosen(lambda parts: True)
    fill(every, embedder.embed_audio_files(paths(every), embedding=audio_size,
                                           **windows),
         lambda parts, r: {"audio": _one(r)})
    return results
  if kind == "image":
    every = chosen(lambda parts: True)
    fill(every, embedder.embed_image_files(paths(every), embedding=image_size,
                                           batch_size=batch_size),
         lambda parts, r: {"image": _one(r)})
    return results
  both = chosen(lambda parts: "video" in parts or set(parts) == {"audio",
                                                                 "image"})
  fill(both, embedder.embed_video_files(
      paths(both), audio_embedding=audio_size, image_embedding=image_size,
      **windows), _video_parts)
  # One half of a split video whose other half exists.
  sound = []
  for i in chosen(lambda parts: parts == ("audio",)):
    try:
      embed_inputs.check_has_video(requests[i][0])
      sound.append(i)
    except Exception as e:  # pylint: disable=broad-except
      results[i] = e
  fill(sound, embedder.embed_audio_files(paths(sound), embedding=audio_size,
                                         **windows),
       lambda parts, r: {"audio": _one(r)})
  for i in chosen(lambda parts: parts == ("image",)):
    path = requests[i][0]
    try:  # the timestamps of the sound track, no audio tower
      timestamps = embedder.video_timestamps(path, hop_seconds=hop_seconds,
                                             center=center)
      image = embedder.embed_video_frames(path, timestamps,
                                          embedding=image_size,
                                          batch_size=batch_size)
      results[i] = {"image": {"embedding": image, "timestamps": timestamps}}
    except Exception as e:  # pylint: disable=broad-except
      results[i] = e
  return results


def embed_one(embedder: embed_lib.Embedder, kind: str, path: str, *,
              parts: Sequence[str] | None = None,
              hop_seconds: float = embed_lib.DEFAULT_HOP_SECONDS,
              center: bool = True, embedding=None,
              batch_size: int = embed_lib.DEFAULT_BATCH_SIZE
              ) -> dict[str, dict[str, np.ndarray]]:
  """The arrays of one input's outputs, {part: {name: array}}.

  Args:
    parts: which outputs (`Job.outputs` keys): "audio", "image" (one
      modality each; for a video, the split files) or "video" (combined).
      Default: the kind's own part.
    embedding: see `EMBEDDINGS`; None or "transfer": the conv4_2 taps;
      "shared": an AVE-Net's shared space.

  Raises:
    The exception that kept the input from being embedded
    (`media.MediaError` for an unreadable file).
  """
  result = embed_batch(embedder, kind, [(path, parts)],
                       hop_seconds=hop_seconds, center=center,
                       embedding=embedding, batch_size=batch_size)[0]
  if isinstance(result, Exception):
    raise result
  return result


def _reason(error: Exception) -> str:
  return f"{type(error).__name__}: {error}"


def embed_jobs(embedder: embed_lib.Embedder, kind: str, jobs: Sequence[Job],
               *, overwrite: bool = False, storage: Storage = GFILE,
               local_inputs: Callable | None = None,
               **embed_kwargs) -> list[Outcome]:
  """Embeds a batch of jobs: the one step of `embed_files` and of the Beam
  pipeline (`l3_tf.serving.embed_beam`), so both write the same files.

  Outputs that exist are kept unless `overwrite` (a job whose outputs all
  exist is SKIPPED); the others are embedded together (`embed_batch`) and
  each written whole (`_save`). An input that fails is FAILED with the
  reason; the others go on.

  Args:
    embedder: the model.
    kind: "audio", "image" or "video".
    jobs: the inputs and their outputs (`find_jobs`).
    overwrite: re-embed inputs whose outputs exist.
    storage: how outputs are checked and written.
    local_inputs: a context manager factory, called with the input paths,
      giving their local paths (remote inputs downloaded); default: the
      paths themselves.
    **embed_kwargs: `hop_seconds`, `center`, `embedding`, `batch_size`.

  Returns:
    One `Outcome` per job, in order.
  """
  outcomes: list = [None] * len(jobs)
  todo = []
  for i, job in enumerate(jobs):
    parts = [part for part, path in job.outputs.items()
             if overwrite or not storage.exists(path)]
    if parts:
      todo.append((i, parts))
    else:
      outcomes[i] = Outcome(job.input_path, SKIPPED)
  if not todo:
    return outcomes
  opener = local_inputs or contextlib.nullcontext
  with opener([jobs[i].input_path for i, _ in todo]) as local:
    arrived = [k for k, path in enumerate(local)
               if not isinstance(path, Exception)]
    results = list(local)  # the exception of an input that did not arrive
    for k, result in zip(arrived, embed_batch(
        embedder, kind, [(local[k], todo[k][1]) for k in arrived],
        **embed_kwargs)):
      results[k] = result
    for (i, parts), path, result in zip(todo, local, results):
      job = jobs[i]
      try:
        if isinstance(result, Exception):
          raise result
        for part in parts:
          _save(job.outputs[part], part, result[part], job.input_path,
                storage)
      except finite.NonFiniteError:
        raise  # the model's fault, not the file's: no input would embed
      except Exception as e:  # pylint: disable=broad-except
        # One bad file must not end the run; named as the user named it.
        reason = _reason(e)
        if isinstance(path, str):
          reason = reason.replace(path, job.input_path)
        outcomes[i] = Outcome(job.input_path, FAILED, reason=reason)
        continue
      outcomes[i] = Outcome(
          job.input_path, DONE, [job.outputs[part] for part in parts],
          next(iter(result.values()))["timestamps"].size)
  return outcomes


def failures_path(output_dir: str | None, kind: str) -> str:
  """Where a run lists its failed inputs."""
  name = FAILED_TSV.format(kind=kind)
  if filesystems.is_url(output_dir):
    return f"{output_dir.rstrip('/')}/{name}"
  return os.path.join(output_dir or ".", name)


def write_failures(summary: RunSummary, output_dir: str | None,
                   storage: Storage = GFILE) -> None:
  """The failed inputs as a TSV (input, reason); an older list is removed
  when nothing failed, so the file always describes the last run."""
  path = failures_path(output_dir, summary.kind)
  if not summary.failed:
    if storage.exists(path):
      storage.remove(path)
    return
  storage.write_text(path, "input\treason\n" + "".join(
      f"{source}\t{' '.join(reason.split())}\n"
      for source, reason in summary.failed))
  summary.failed_tsv = path


def embed_files(embedder: embed_lib.Embedder, kind: str, inputs,
                output_dir: str | None = None, *, suffix: str = "",
                overwrite: bool = False, video_output: str = "combined",
                output_format: str = "npz", progress: bool = True,
                report: Callable[[str], None] | None = None,
                **embed_kwargs) -> RunSummary:
  """Embeds every input file (layout and contents: module docstring).

  One file that fails (unreadable, no audio, ...) is reported through
  `report`, counted and listed in the failures TSV; the run goes on.

  Args:
    embedder: the model, loaded once.
    kind: "audio", "image" or "video".
    inputs: a file, folder or pattern, or a list of them.
    output_dir: where the outputs go; None: beside each input.
    suffix: added to every output name (before `_audio`/`_image`).
    overwrite: re-embed inputs whose output exists (default: skip them,
      output file by output file).
    video_output: "combined" (one file) or "split" (one per modality).
    output_format: "npz" or "parquet".
    progress: show a progress bar (files, windows/s) on stderr.
    report: called with one line per failure (default: print to stderr
      without breaking the progress bar).
    **embed_kwargs: `hop_seconds`, `center`, `embedding`, `batch_size` (see
      `embed_one`).

  Returns:
    The RunSummary.

  Raises:
    ValueError: a bad argument or input (see `check_run_options`,
      `resolve_inputs`), before anything is embedded.
    finite.NonFiniteError: the model computes a non-finite embedding of a
      finite input; that input's outputs are not written.
  """
  started = time.perf_counter()
  check_run_options(kind, video_output=video_output,
                    output_format=output_format, suffix=suffix,
                    **embed_kwargs)
  report = report or (lambda line: tqdm.tqdm.write(line, file=sys.stderr))
  jobs, problems = find_jobs(inputs, kind, output_dir, suffix=suffix,
                             video_output=video_output,
                             output_format=output_format)
  if output_format == "parquet":
    check_parquet()
  summary = RunSummary(kind=kind)
  for path, reason in problems:
    summary.failed.append((path, reason))
    report(f"FAILED {path}: {reason}")
  bar = tqdm.tqdm(jobs, desc=f"l3-embed {kind}", unit="file",
                  disable=not progress, file=sys.stderr)
  for job in bar:
    outcome, = embed_jobs(embedder, kind, [job], overwrite=overwrite,
                          **embed_kwargs)
    summary.add(outcome)
    if outcome.status == FAILED:
      report(f"FAILED {job.input_path}: {outcome.reason}")
    elif outcome.status == DONE:
      rate = summary.windows / (time.perf_counter() - started)
      bar.set_postfix_str(f"{rate:.1f} windows/s", refresh=False)
  summary.seconds = time.perf_counter() - started
  write_failures(summary, output_dir)
  return summary


def export_and_embed_video(workdir: str, video: str, *,
                           export_path: str | None = None,
                           output_dir: str | None = None,
                           hop_seconds: float = embed_lib.DEFAULT_HOP_SECONDS
                           ) -> dict:
  """Exports a workdir's latest checkpoint and embeds one video with it.

  What `make demo` runs after training: the export is written (replacing an
  older one), checked against the Keras model, reloaded as users load it,
  and one video is embedded as `l3-embed video` would.

  Args:
    workdir: a training workdir.
    video: a video file with sound.
    export_path: default `<workdir>/export`.
    output_dir: for the `.npz`; default `<workdir>/embeddings`.
    hop_seconds: time between embeddings.

  Returns:
    {"export_path", "embeddings_path", "num_timestamps",
     "audio_embedding_shape", "image_embedding_shape"}.

  Raises:
    RuntimeError: the video could not be embedded (the reason is given).
  """
  export_path = export_path or os.path.join(workdir, "export")
  output_dir = output_dir or os.path.join(workdir, "embeddings")
  export_lib.export_workdir(workdir, export_path, overwrite=True)
  embedder = embed_lib.Embedder.load(export_path)
  summary = embed_files(embedder, "video", [video], output_dir,
                        overwrite=True, progress=False,
                        hop_seconds=hop_seconds)
  if summary.failed:
    raise RuntimeError(f"embedding {video} failed: {summary.failed[0][1]}")
  path = summary.written[0]
  arrays = np.load(path)
  return {"export_path": export_path, "embeddings_path": path,
          "num_timestamps": int(arrays["timestamps"].size),
          "audio_embedding_shape": list(arrays["audio_embedding"].shape),
          "image_embedding_shape": list(arrays["image_embedding"].shape)}
