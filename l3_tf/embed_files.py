"""Embeds many files into `.npz` files: the library behind `l3-embed`.

Inputs are files or folders. A file given by name is always embedded,
whatever its extension; folders are searched recursively for the extensions
of the kind (`EXTENSIONS`), so that side files (a manifest.csv, a README)
are not mistaken for media. The output of `<folder>/<sub>/<name>.<ext>` is
`<output_dir>/<sub>/<name>.npz` (sub-folders are kept so that equal names in
different folders do not collide); a file given by name goes to
`<output_dir>/<name>.npz`.

Each `.npz` holds (see `l3_tf.embed` for what a timestamp means):
  audio:  `embedding` float32 [T, D], `timestamps` float64 [T] (window centres)
  image:  `embedding` float32 [1, D], `timestamps` [0.]
  video:  `audio_embedding` [T, Da], `image_embedding` [T, Di] and their
          shared `timestamps` [T]
"""

import dataclasses
import os
import pathlib
import sys
from typing import Callable, Sequence

import numpy as np
import tqdm

from l3_tf import embed as embed_lib
from l3_tf import export as export_lib
from l3_tf import media

KINDS = ("audio", "image", "video")
_IMAGE = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# Audio mode also reads the sound track of videos found in folders.
EXTENSIONS = {"audio": media.AUDIO_EXTENSIONS + media.VIDEO_EXTENSIONS,
              "image": _IMAGE, "video": media.VIDEO_EXTENSIONS}
# Default embedding of each kind: the transfer taps of PAPER.md §5.
DEFAULT_EMBEDDING = {"audio": 6144, "image": 8192, "video": None}


@dataclasses.dataclass(frozen=True)
class Job:
  """One input file and the `.npz` it is embedded into."""

  input_path: str
  output_path: str


@dataclasses.dataclass
class RunSummary:
  """What a run did: counts and, per failed input, the reason."""

  written: list[str] = dataclasses.field(default_factory=list)
  skipped: list[str] = dataclasses.field(default_factory=list)
  failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)

  def __str__(self) -> str:
    return (f"{len(self.written)} written, {len(self.skipped)} skipped "
            f"(output exists), {len(self.failed)} failed")


def find_jobs(inputs: Sequence[str], kind: str, output_dir: str
              ) -> tuple[list[Job], list[tuple[str, str]]]:
  """The files to embed and their outputs; plus inputs that cannot be.

  Returns:
    (jobs in a stable order, [(input, reason)] for missing inputs and for
    inputs whose output another input already claims).
  """
  if kind not in KINDS:
    raise ValueError(f"kind={kind!r}; expected one of {KINDS}")
  found, problems = [], []
  for item in inputs:
    path = pathlib.Path(item)
    if path.is_dir():
      for file in sorted(p for p in path.rglob("*") if p.is_file()):
        relative = file.relative_to(path)
        if (file.suffix.lower() in EXTENSIONS[kind] and
            not any(part.startswith(".") for part in relative.parts)):
          found.append((file, relative.with_suffix(".npz")))
    elif path.is_file():
      found.append((path, pathlib.Path(path.name).with_suffix(".npz")))
    else:
      problems.append((str(path), "no such file or folder"))
  jobs, claimed = [], {}
  for file, relative in found:
    output = os.path.join(output_dir, str(relative))
    if output in claimed:
      problems.append((str(file), f"its output {output} is also the output "
                       f"of {claimed[output]}; embed one of them separately"))
      continue
    claimed[output] = str(file)
    jobs.append(Job(str(file), output))
  return jobs, problems


def _save(path: str, arrays: dict[str, np.ndarray]) -> None:
  """Writes an npz atomically: a crash never leaves a file that a later run
  would take as done."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  temporary = f"{path}.partial"
  with open(temporary, "wb") as f:
    np.savez(f, **arrays)
  os.replace(temporary, path)


def check_embedding(kind: str, embedding: int | None) -> None:
  """Raises ValueError unless `embedding` is valid for `kind` (None is)."""
  allowed = {"audio": embed_lib.AUDIO_EMBEDDINGS,
             "image": embed_lib.IMAGE_EMBEDDINGS,
             "video": (512, 6144, 8192)}[kind]
  if embedding is not None and int(embedding) not in allowed:
    raise ValueError(f"embedding={embedding} but {kind} embeddings are "
                     f"{list(allowed)}")


def embed_one(embedder: embed_lib.Embedder, kind: str, path: str, *,
              hop_seconds: float = embed_lib.DEFAULT_HOP_SECONDS,
              center: bool = True, embedding: int | None = None,
              batch_size: int = embed_lib.DEFAULT_BATCH_SIZE
              ) -> dict[str, np.ndarray]:
  """The arrays of one input's `.npz` (see the module docstring).

  Args:
    embedding: 512, 6144 (audio) or 8192 (image); None: the kind's default.
      For video, 512 gives both 512-d embeddings and 6144 / 8192 / None the
      conv4_2 taps of both towers (6144-d audio, 8192-d image).
  """
  if kind == "audio":
    result = embedder.embed_audio_file(
        path, hop_seconds=hop_seconds, center=center,
        embedding=embedding or DEFAULT_EMBEDDING[kind], batch_size=batch_size)
    return {"embedding": result.embedding, "timestamps": result.timestamps}
  if kind == "image":
    result = embedder.embed_image_file(
        path, embedding=embedding or DEFAULT_EMBEDDING[kind])
    return {"embedding": result.embedding, "timestamps": result.timestamps}
  if kind == "video":
    small = embedding == 512
    result = embedder.embed_video(
        path, hop_seconds=hop_seconds, center=center,
        audio_embedding=512 if small else 6144,
        image_embedding=512 if small else 8192, batch_size=batch_size)
    return {"audio_embedding": result.audio, "image_embedding": result.image,
            "timestamps": result.timestamps}
  raise ValueError(f"kind={kind!r}; expected one of {KINDS}")


def embed_files(embedder: embed_lib.Embedder, kind: str,
                inputs: Sequence[str], output_dir: str, *,
                overwrite: bool = False, progress: bool = True,
                report: Callable[[str], None] | None = None,
                **embed_kwargs) -> RunSummary:
  """Embeds every input file into `<output_dir>/.../<name>.npz`.

  One file that fails (unreadable, no audio, ...) is reported through
  `report` and counted; the run goes on with the next file.

  Args:
    embedder: the model, loaded once.
    kind: "audio", "image" or "video".
    inputs: files and folders (searched recursively).
    output_dir: where the `.npz` files go.
    overwrite: re-embed inputs whose output exists (default: skip them).
    progress: show a progress bar on stderr.
    report: called with one line per failure (default: print to stderr
      without breaking the progress bar).
    **embed_kwargs: `hop_seconds`, `center`, `embedding`, `batch_size` (see
      `embed_one`).

  Returns:
    The RunSummary.
  """
  check_embedding(kind, embed_kwargs.get("embedding"))
  report = report or (lambda line: tqdm.tqdm.write(line, file=sys.stderr))
  jobs, problems = find_jobs(inputs, kind, output_dir)
  summary = RunSummary()
  for path, reason in problems:
    summary.failed.append((path, reason))
    report(f"FAILED {path}: {reason}")
  bar = tqdm.tqdm(jobs, desc=f"l3-embed {kind}", unit="file",
                  disable=not progress, file=sys.stderr)
  for job in bar:
    if os.path.exists(job.output_path) and not overwrite:
      summary.skipped.append(job.input_path)
      continue
    try:
      arrays = embed_one(embedder, kind, job.input_path, **embed_kwargs)
    except Exception as e:  # one bad file must not end the run
      reason = str(e) if job.input_path in str(e) else f"{job.input_path}: {e}"
      summary.failed.append((job.input_path, f"{type(e).__name__}: {e}"))
      report(f"FAILED {reason}")
      continue
    _save(job.output_path, arrays)
    summary.written.append(job.output_path)
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
