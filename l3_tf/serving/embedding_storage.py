"""How `l3-embed` writes one output: `.npz` or Parquet, atomically, locally or
to a URL through `tf.io.gfile`.

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
"""

import os
import tempfile

import numpy as np
import tensorflow as tf

from l3_tf.platform import filesystems

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


def save(path: str, part: str, arrays: dict[str, np.ndarray],
          source: str, storage: Storage = GFILE) -> None:
  """Writes one output atomically: a crash never leaves a file that a later
  run would take as done. A URL's object is finished in a local temporary
  file first and copied up whole (`storage.upload`)."""
  if filesystems.is_url(path):
    with tempfile.TemporaryDirectory(prefix="l3-embed-") as local:
      staged = os.path.join(local, path.rsplit("/", 1)[-1])
      save(staged, part, arrays, source)
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
