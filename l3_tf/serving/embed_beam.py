"""Embedding a collection on Apache Beam: `l3-embed ... --runner=NAME` and
`l3-search index ... --runner=NAME`.

The pipeline does what `embed_files.embed_files` does, file for file,
on any Beam runner (DirectRunner here; DataflowRunner, FlinkRunner,
SparkRunner for collections one machine cannot embed in time):

  launcher  inputs listed with Beam's `FileSystems.match` (local paths and
            s3://, gs://... alike), the same jobs as `file_jobs.find_jobs`
            (`list_jobs`); written as JSON lines to a run folder
            `<output_dir>/.l3-embed-beam-<id>/` that every worker can read
  pipeline  ReadFromText(jobs) | Reshuffle (spread over the workers)
            | BatchElements(files_per_batch) | ParDo(embed): the model is
            loaded once per worker (`DoFn.setup`); each batch goes through
            `embed_files.embed_jobs`, the step the in-process path runs, so
            existing outputs are skipped (unless `overwrite`), the windows of
            the batch's files share network calls, each output is written
            whole (a local temporary file renamed, or finished locally and
            uploaded as one object), and a file that fails is an outcome
            with its reason, never a stopped pipeline
            | WriteToText(outcomes)
  launcher  the outcomes become the `RunSummary` (done / skipped / failed)
            and the failure list `<output_dir>/l3-embed_failed_<kind>.tsv`;
            the run folder is removed.

A killed pipeline loses only the files in flight: every output on disk is
whole, and a rerun skips them. Remote inputs are downloaded to a worker's
temporary folder before decoding (PyAV reads local files); their outputs and
failure reasons name them by their URL.

Beam's own file systems serve every path of the pipeline: S3 needs
`apache-beam[aws]` (boto3) and its `--s3_*` options (`--s3_endpoint_url`
for an S3-compatible server) in `beam_options`, GCS `apache-beam[gcp]`. The
model is loaded by TensorFlow (a local path, gs://, or s3:// with
tensorflow-io). On a remote runner the workers need l3_tf installed
(`--setup_file`, `--requirements_file` or a container image).

Apache Beam (the `beam` extra) is imported here only, lazily (STYLE.md 18).
"""

import contextlib
import dataclasses
import functools
import json
import logging
import os
import pathlib
import shlex
import shutil
import tempfile
import time
import uuid
from typing import Callable, Sequence

from l3_tf.platform import filesystems
from l3_tf.serving import embed_files
from l3_tf.serving import embedding_storage
from l3_tf.serving import file_jobs

DEFAULT_FILES_PER_BATCH = 8
RUNNERS = ("DirectRunner", "DataflowRunner", "FlinkRunner", "SparkRunner",
           "PortableRunner", "PrismRunner")
_RUN_FOLDER = ".l3-embed-beam-"
_JOBS = "jobs.jsonl"
_OUTCOMES = "outcomes"


def _beam():
  """apache_beam, imported on first use (the one door to it)."""
  try:
    import apache_beam  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ImportError("--runner needs Apache Beam: pip install "
                      "'l3_tf[beam]'") from None
  return apache_beam


def _filesystems():
  return _beam().io.filesystems.FileSystems


# -- paths ---------------------------------------------------------------------

def _join(folder: str, name: str) -> str:
  if filesystems.is_url(folder):
    return f"{folder.rstrip('/')}/{name}"
  return os.path.join(folder, name)


def _normal(path: str) -> str:
  """Local paths as pathlib writes them (`embed_files` names inputs so)."""
  return path if filesystems.is_url(path) else str(pathlib.Path(path))


def _matches(pattern: str) -> list[str]:
  """Paths of the files matching a Beam pattern (none: [])."""
  fs = _filesystems()
  try:
    result, = fs.match([pattern])
  except _beam().io.filesystem.BeamIOError as e:
    if any(isinstance(error, FileNotFoundError)
           for error in getattr(e, "exception_details", {}).values()):
      return []
    raise
  return [_normal(m.path) for m in result.metadata_list]


def _has_magic(text: str) -> bool:
  return any(c in text for c in "*?[")


def match_inputs(inputs, kind: str
                 ) -> list[tuple[str, pathlib.PurePath | None]]:
  """`file_jobs.resolve_inputs` through Beam's file systems: the files to
  embed, each once, as (path, path relative to the folder it was found in,
  or None for a file given by name or pattern).

  A folder is every file under it (recursively) with an extension of the
  kind, hidden ones left out; a pattern follows Beam's syntax (`*` within a
  folder, `**` across folders) and keeps the extensions of the kind; a file
  given by name is always embedded.

  Raises:
    ValueError: a path that does not exist, a folder without files of the
      kind, a pattern that matches none; no input at all.
  """
  file_jobs.check_run_options(kind)
  if isinstance(inputs, (str, os.PathLike)):
    inputs = [inputs]
  inputs = [os.fspath(item) for item in inputs]
  if not inputs:
    raise ValueError("inputs=[]: give at least one file, folder or pattern")
  extensions = file_jobs.EXTENSIONS[kind]
  found, seen = [], set()

  def add(path: str, relative):
    key = path if filesystems.is_url(path) else os.path.realpath(path)
    if key not in seen:
      seen.add(key)
      found.append((path, relative))

  def of_kind(path: str) -> bool:
    return pathlib.PurePosixPath(path).suffix.lower() in extensions

  for item in inputs:
    if _has_magic(item):
      files = sorted((p for p in _matches(item) if of_kind(p)),
                     key=pathlib.PurePosixPath)
      if not files:
        raise ValueError(f"{item}: the pattern matches no {kind} file "
                         f"(extensions {' '.join(extensions)})")
      for path in files:
        add(path, None)
      continue
    folder = _normal(item.rstrip("/") or item)
    local_dir = not filesystems.is_url(item) and os.path.isdir(item)
    under = _matches(_join(folder, "**")) if (
        local_dir or filesystems.is_url(item)) else []
    if local_dir or under:
      files = []
      for path in under:
        relative = (pathlib.PurePosixPath(path[len(folder):].lstrip("/"))
                    if filesystems.is_url(path) else
                    pathlib.PurePath(path).relative_to(folder))
        if of_kind(path) and not any(part.startswith(".")
                                     for part in relative.parts):
          files.append((path, relative))
      if not files:
        raise ValueError(f"{item}: no {kind} files in this folder "
                         f"(extensions {' '.join(extensions)})")
      for path, relative in sorted(files, key=lambda f: f[1]):
        add(path, relative)
    elif _filesystems().exists(item):
      add(_normal(item), None)
    else:
      raise ValueError(f"{item}: no such file or folder")
  return found


def list_jobs(inputs, kind: str, output_dir: str, *, suffix: str = "",
              video_output: str = "combined", output_format: str = "npz"
              ) -> tuple[list[file_jobs.Job], list[tuple[str, str]]]:
  """`file_jobs.find_jobs` with the inputs listed by `match_inputs`."""
  return file_jobs.jobs_of(match_inputs(inputs, kind), kind, output_dir,
                             suffix=suffix, video_output=video_output,
                             output_format=output_format)


# -- the worker side -----------------------------------------------------------

class BeamStorage(embedding_storage.Storage):
  """`embedding_storage.Storage` through Beam's file systems (what workers use)."""

  def exists(self, path: str) -> bool:
    return _filesystems().exists(path)

  def remove(self, path: str) -> None:
    _filesystems().delete([path])

  def write_text(self, path: str, text: str) -> None:
    self._write(path, lambda f: f.write(text.encode()))

  def upload(self, local: str, path: str) -> None:
    with open(local, "rb") as source:
      self._write(path, lambda f: shutil.copyfileobj(source, f))

  @staticmethod
  def _write(path: str, fill: Callable) -> None:
    """An object store's object appears when its writer is closed: it is
    closed only once it is whole, so a failure leaves no object at all."""
    beam = _beam()
    writer = _filesystems().create(
        path, compression_type=beam.io.filesystem.CompressionTypes.UNCOMPRESSED)
    fill(writer)
    writer.close()


@contextlib.contextmanager
def local_inputs(paths: Sequence[str]):
  """Local paths of the inputs: remote ones downloaded to a temporary
  folder (removed after), with their names; an input that cannot be
  downloaded is its exception."""
  beam = _beam()
  with tempfile.TemporaryDirectory(prefix="l3-embed-inputs-") as folder:
    local = []
    for i, path in enumerate(paths):
      if not filesystems.is_url(path):
        local.append(path)
        continue
      target = os.path.join(folder, str(i), path.rsplit("/", 1)[-1])
      os.makedirs(os.path.dirname(target))
      try:
        with _filesystems().open(
            path, compression_type=beam.io.filesystem.CompressionTypes
            .UNCOMPRESSED) as source, open(target, "wb") as copy:
          shutil.copyfileobj(source, copy)
        local.append(target)
      except Exception as e:  # pylint: disable=broad-except
        local.append(OSError(f"{path}: cannot be read ({e})"))
    yield local


@dataclasses.dataclass(frozen=True)
class EmbedSettings:
  """What every worker needs to embed a batch: the model and the options
  of `embed_files.embed_jobs`."""

  model: str
  kind: str
  compute_dtype: str = "float32"
  overwrite: bool = False
  embed_kwargs: dict = dataclasses.field(default_factory=dict)


@functools.cache
def _embed_dofn():
  """The DoFn class (built on first use: Beam is imported lazily)."""
  beam = _beam()

  class EmbedBatches(beam.DoFn):
    """Embeds batches of jobs; the model is loaded once per worker."""

    def __init__(self, settings: EmbedSettings):
      super().__init__()
      self._settings = settings
      self._embedder = None
      self._counters = {status: beam.metrics.Metrics.counter("l3-embed",
                                                             status)
                        for status in ("done", "skipped", "failed",
                                       "windows")}

    def setup(self):
      from l3_tf.serving import embed as embed_lib  # pylint: disable=g-import-not-at-top
      filesystems.prepare(self._settings.model, "--model")
      self._embedder = embed_lib.Embedder.load(self._settings.model,
                                               self._settings.compute_dtype)

    def process(self, batch):
      settings = self._settings
      outcomes = embed_files.embed_jobs(
          self._embedder, settings.kind, [job for _, job in batch],
          overwrite=settings.overwrite, storage=BeamStorage(),
          local_inputs=local_inputs, **settings.embed_kwargs)
      for (index, _), outcome in zip(batch, outcomes):
        self._counters[outcome.status].inc()
        self._counters["windows"].inc(outcome.windows)
        yield json.dumps({"index": index, **dataclasses.asdict(outcome)})

  return EmbedBatches


def _job_line(index: int, job: file_jobs.Job) -> str:
  return json.dumps({"index": index, "input": job.input_path,
                     "outputs": job.outputs})


def _job_of_line(line: str) -> tuple[int, file_jobs.Job]:
  record = json.loads(line)
  return record["index"], file_jobs.Job(record["input"], record["outputs"])


# -- the launcher -------------------------------------------------------------

def pipeline_options(runner: str, beam_options: str = ""):
  """`PipelineOptions` of `--runner` and the `--beam_options` string (flags
  as on a command line, e.g. "--direct_num_workers=2
  --direct_running_mode=multi_processing"); workers log errors only
  unless the string says otherwise.

  Raises:
    ValueError: an empty runner, or options Beam does not parse.
  """
  if not runner or not isinstance(runner, str):
    raise ValueError(f"runner={runner!r}; expected a Beam runner name such as "
                     f"{', '.join(RUNNERS)}")
  beam = _beam()
  try:
    flags = shlex.split(beam_options or "")
  except ValueError as e:
    raise ValueError(f"beam_options={beam_options!r}: {e}") from None
  if not any(f.startswith("--default_sdk_harness_log_level") for f in flags):
    flags.append("--default_sdk_harness_log_level=ERROR")
  options = beam.options.pipeline_options.PipelineOptions(
      [f"--runner={runner}", *flags])
  unknown = [f for f in options.get_all_options(retain_unknown_options=True)
             if f not in options.get_all_options()]
  if unknown:
    raise ValueError(f"beam_options={beam_options!r}: Beam does not know "
                     f"{', '.join('--' + u for u in unknown)}")
  return options


def _read_lines(pattern: str) -> list[str]:
  fs = _filesystems()
  lines = []
  for path in _matches(pattern):
    with fs.open(path) as f:
      lines += [line for line in f.read().decode().splitlines() if line]
  return lines


def _remove_run_folder(run_dir: str) -> None:
  fs = _filesystems()
  if filesystems.is_url(run_dir):
    paths = _matches(_join(run_dir, "**"))
    if paths:
      fs.delete(paths)
  elif os.path.isdir(run_dir):
    shutil.rmtree(run_dir, ignore_errors=True)


def embed_files_beam(model: str, kind: str, inputs, output_dir: str, *,
                     runner: str, beam_options: str = "",
                     compute_dtype: str = "float32", suffix: str = "",
                     overwrite: bool = False, video_output: str = "combined",
                     output_format: str = "npz",
                     files_per_batch: int = DEFAULT_FILES_PER_BATCH,
                     report: Callable[[str], None] | None = None,
                     **embed_kwargs) -> embed_files.RunSummary:
  """`embed_files.embed_files` as a Beam pipeline (module docstring).

  Args:
    model: an exported SavedModel or a training workdir, readable by the
      workers.
    kind: "audio", "image" or "video".
    inputs: files, folders or patterns, local or URLs (Beam's file systems).
    output_dir: where the outputs and the failure list go (required: the
      workers write there).
    runner: a Beam runner name ("DirectRunner", "DataflowRunner", ...).
    beam_options: more pipeline options, as command-line flags.
    compute_dtype: for a workdir model (see `Embedder.load`).
    suffix, overwrite, video_output, output_format, **embed_kwargs: as in
      `embed_files.embed_files`.
    files_per_batch: files whose windows share network calls.
    report: called with one line per failure (default: logging.warning).

  Returns:
    The RunSummary (done, skipped, failed with reasons, written, windows).

  Raises:
    ValueError: a bad argument or input, before the pipeline starts.
  """
  started = time.perf_counter()
  file_jobs.check_run_options(kind, video_output=video_output,
                                output_format=output_format, suffix=suffix,
                                **embed_kwargs)
  if not output_dir:
    raise ValueError("--runner needs --output_dir: the workers write the "
                     "outputs and the failure list there")
  if isinstance(files_per_batch, bool) or not isinstance(
      files_per_batch, int) or files_per_batch < 1:
    raise ValueError(f"files_per_batch={files_per_batch!r}; expected an int "
                     ">= 1")
  report = report or logging.warning
  beam = _beam()
  options = pipeline_options(runner, beam_options)
  _filesystems().set_options(options)
  jobs, problems = list_jobs(inputs, kind, output_dir, suffix=suffix,
                             video_output=video_output,
                             output_format=output_format)
  if output_format == "parquet":
    embedding_storage.check_parquet()
  summary = embed_files.RunSummary(kind=kind)
  for path, reason in problems:
    summary.failed.append((path, reason))
    report(f"FAILED {path}: {reason}")
  run_dir = _join(output_dir, f"{_RUN_FOLDER}{uuid.uuid4().hex[:12]}")
  storage = BeamStorage()
  try:
    storage.write_text(_join(run_dir, _JOBS), "".join(
        _job_line(i, job) + "\n" for i, job in enumerate(jobs)))
    settings = EmbedSettings(
        model=model, kind=kind, compute_dtype=compute_dtype,
        overwrite=overwrite,
        embed_kwargs={k: v for k, v in embed_kwargs.items() if v is not None})
    pipeline = beam.Pipeline(options=options)
    _ = (pipeline
         | "ReadJobs" >> beam.io.ReadFromText(_join(run_dir, _JOBS))
         | "ParseJobs" >> beam.Map(_job_of_line)
         | "Spread" >> beam.Reshuffle()
         | "Batch" >> beam.BatchElements(min_batch_size=files_per_batch,
                                         max_batch_size=files_per_batch)
         | "Embed" >> beam.ParDo(_embed_dofn()(settings))
         | "WriteOutcomes" >> beam.io.WriteToText(_join(run_dir, _OUTCOMES)))
    pipeline.run().wait_until_finish()
    records = sorted((json.loads(line) for line in
                      _read_lines(_join(run_dir, f"{_OUTCOMES}*"))),
                     key=lambda r: r["index"])
  finally:
    _remove_run_folder(run_dir)
  if [r["index"] for r in records] != list(range(len(jobs))):
    missing = sorted(set(range(len(jobs))) - {r["index"] for r in records})
    names = [jobs[i].input_path for i in missing[:5]]
    raise RuntimeError(
        f"the {runner} pipeline reported {len(records)} outcomes for "
        f"{len(jobs)} inputs (none for {names}...); rerun: inputs whose "
        "outputs exist are skipped")
  for record in records:
    record.pop("index")
    outcome = embed_files.Outcome(**record)
    summary.add(outcome)
    if outcome.status == embed_files.FAILED:
      report(f"FAILED {outcome.input_path}: {outcome.reason}")
  summary.seconds = time.perf_counter() - started
  embed_files.write_failures(summary, output_dir, storage)
  return summary


def index_videos_beam(embedder, videos_dir: str, index_path: str, model: str,
                      *, runner: str, beam_options: str = "",
                      hop_seconds: float = 0.5, batch_size: int = 32,
                      files_per_batch: int = DEFAULT_FILES_PER_BATCH,
                      settings=None,
                      report: Callable[[str], None] | None = None):
  """`search_index.index_videos` with the embedding on a Beam pipeline:
  the videos' shared-space embeddings are written as Parquet shards to
  `<index_path>/embeddings/` (one per video, skipped when it exists), then
  the index is built from them in this process
  (`search_index.index_embeddings`).

  Args:
    embedder: the AVE-Net, loaded here (its shared size; the workers load
      `model` themselves).
    videos_dir: folder searched recursively for videos.
    index_path: the index folder (local), created or added to.
    model: the model's path, readable by the workers.
    runner, beam_options, files_per_batch: as in `embed_files_beam`.
    hop_seconds, batch_size: as in `index_videos`.
    settings: HNSW settings of a new index (default `AnnSettings()`).
    report: one line per failed video (default: logging.warning).

  Returns:
    The `search_index.IndexSummary`; its `windows_per_second` is that of
    the pipeline (start-up included).
  """
  from l3_tf.serving import embed as embed_lib  # pylint: disable=g-import-not-at-top
  from l3_tf.serving import index_store
  from l3_tf.serving import search_index  # pylint: disable=g-import-not-at-top

  settings = settings or index_store.AnnSettings()
  videos = search_index.video_files(videos_dir)  # or SearchIndexError
  _, _, state = search_index.open_index(embedder, index_path, model,
                                        hop_seconds, settings)
  shards = os.path.join(index_path, "embeddings")
  for path in videos:  # changed since indexed: embedded again
    if search_index.needs_reindex(state, path):
      stale = file_jobs.output_paths(
          path, pathlib.Path(path).relative_to(videos_dir), shards, "video",
          output_format="parquet")["video"]
      if os.path.exists(stale):
        os.remove(stale)
  run = embed_files_beam(model, "video", [os.path.abspath(videos_dir)],
                         shards, runner=runner, beam_options=beam_options,
                         output_format="parquet", embedding=embed_lib.SHARED,
                         hop_seconds=hop_seconds, batch_size=batch_size,
                         files_per_batch=files_per_batch,
                         report=lambda line: None)
  summary = search_index.index_embeddings(
      embedder, shards, index_path, model, hop_seconds=hop_seconds,
      settings=settings, failed=run.failed, report=report)
  if run.windows:
    summary.windows_per_second = run.windows / run.seconds
  return summary
