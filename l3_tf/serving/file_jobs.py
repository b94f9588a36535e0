"""Which files an `l3-embed` run embeds and where each one's outputs go.

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
"""

import dataclasses
import glob
import os
import pathlib

from l3_tf.data import media
from l3_tf.platform import filesystems
from l3_tf.serving import embed as embed_lib
from l3_tf.serving import embed_inputs

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


@dataclasses.dataclass(frozen=True)
class Job:
  """One input file and its outputs: {part: path}, part in "audio", "image"
  (one modality) or "video" (the combined file)."""

  input_path: str
  outputs: dict


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
