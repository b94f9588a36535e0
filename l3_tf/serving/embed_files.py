"""Embeds many files into `.npz` or Parquet files: the library behind
`l3-embed`.

Which files are embedded and where their outputs go: `l3_tf.serving.file_jobs`;
the output files (`.npz`, Parquet): `l3_tf.serving.embedding_storage`.

A run ends with a `RunSummary`; the inputs that failed are listed, with the
reason, in `<output_dir or .>/l3-embed_failed_<kind>.tsv`.
"""

import contextlib
import dataclasses
import os
import sys
import time
from typing import Callable, Sequence

import numpy as np
import tqdm

from l3_tf.model import finite
from l3_tf.platform import filesystems
from l3_tf.serving import embed as embed_lib
from l3_tf.serving import embed_inputs
from l3_tf.serving import embedding_storage
from l3_tf.serving import export as export_lib
from l3_tf.serving import file_jobs

FAILED_TSV = "l3-embed_failed_{kind}.tsv"

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
  embedding = file_jobs.normalize_embedding(kind, embedding)
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
    parts: which outputs (`file_jobs.Job.outputs` keys): "audio", "image" (one
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


def embed_jobs(embedder: embed_lib.Embedder, kind: str, jobs: Sequence[file_jobs.Job],
               *, overwrite: bool = False, storage: embedding_storage.Storage = embedding_storage.GFILE,
               local_inputs: Callable | None = None,
               **embed_kwargs) -> list[Outcome]:
  """Embeds a batch of jobs: the one step of `embed_files` and of the Beam
  pipeline (`l3_tf.serving.embed_beam`), so both write the same files.

  Outputs that exist are kept unless `overwrite` (a job whose outputs all
  exist is SKIPPED); the others are embedded together (`embed_batch`) and
  each written whole (`embedding_storage.save`). An input that fails is FAILED with the
  reason; the others go on.

  Args:
    embedder: the model.
    kind: "audio", "image" or "video".
    jobs: the inputs and their outputs (`file_jobs.find_jobs`).
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
          embedding_storage.save(job.outputs[part], part, result[part], job.input_path,
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
                   storage: embedding_storage.Storage = embedding_storage.GFILE) -> None:
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
    ValueError: a bad argument or input (see `file_jobs.check_run_options`,
      `resolve_inputs`), before anything is embedded.
    finite.NonFiniteError: the model computes a non-finite embedding of a
      finite input; that input's outputs are not written.
  """
  started = time.perf_counter()
  file_jobs.check_run_options(kind, video_output=video_output,
                    output_format=output_format, suffix=suffix,
                    **embed_kwargs)
  report = report or (lambda line: tqdm.tqdm.write(line, file=sys.stderr))
  jobs, problems = file_jobs.find_jobs(inputs, kind, output_dir, suffix=suffix,
                             video_output=video_output,
                             output_format=output_format)
  if output_format == "parquet":
    embedding_storage.check_parquet()
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
