"""The on-disk form of an `l3-search` index: its folder, files and ANN.

Layout of an index folder (`IndexDir`):

  index.json        format, the model, the hop, the ANN library and settings
  files.json        per indexed file: size, mtime, first id, item count;
                    and the files that failed, with the reason
  items.jsonl       one line per vector, in id order: file, modality, time
  vectors.f32       the raw unit-norm vectors, float32 [n, dim], id order
  audio.usearch     ANN index of the audio vectors (keys = ids)
  image.usearch     ANN index of the image vectors

How a build resumes after a stop: `l3_tf.serving.search_index`.

The ANN library is usearch (HNSW; the `search` extra): chosen by
measurement against faiss-cpu and hnswlib (`benchmarks/search_index.py`,
README "Cross-modal search"). It is imported here only, lazily.
"""

import dataclasses
import json
import os
from typing import Sequence

import numpy as np

AUDIO = "audio"
IMAGE = "image"
MODALITIES = (AUDIO, IMAGE)
FORMAT_VERSION = 1
INDEX_FILE = "index.json"
FILES_FILE = "files.json"
ITEMS_FILE = "items.jsonl"
VECTORS_FILE = "vectors.f32"


class SearchIndexError(ValueError):
  """An index folder that cannot be used as asked (named in the message)."""


def _usearch():
  """The ANN library, imported on first use (one door, STYLE.md §18)."""
  try:
    from usearch import index as usearch_index  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ImportError(
        "l3-search needs the usearch library: pip install 'l3_tf[search]'"
    ) from None
  return usearch_index


def ann_library() -> str:
  import usearch  # pylint: disable=g-import-not-at-top
  return f"usearch {usearch.__version__}"


@dataclasses.dataclass(frozen=True)
class AnnSettings:
  """HNSW settings of the ANN index (usearch's names).

  Attributes:
    connectivity: graph degree M.
    expansion_add: candidate list size while building (efConstruction).
    expansion_search: candidate list size while searching (ef).
  """

  connectivity: int = 16
  expansion_add: int = 128
  expansion_search: int = 64


def new_ann(dim: int, settings: AnnSettings = AnnSettings()):
  """An empty usearch index of unit vectors compared by squared L2."""
  return _usearch().Index(ndim=dim, metric="l2sq", dtype="f32",
                          connectivity=settings.connectivity,
                          expansion_add=settings.expansion_add,
                          expansion_search=settings.expansion_search)


def write_json(path: str, value) -> None:
  """Writes JSON through a temporary file and a rename (never half a file)."""
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    json.dump(value, f, indent=1, sort_keys=True)
  os.replace(tmp, path)


def read_json(path: str):
  with open(path) as f:
    return json.load(f)


@dataclasses.dataclass
class Item:
  """What one vector is: `file`, `modality` ("audio"/"image"), `time` s."""

  file: str
  modality: str
  time: float


class IndexDir:
  """An index folder (see the module docstring); opened or created."""

  def __init__(self, path: str):
    self.path = os.path.abspath(path)

  def file(self, name: str) -> str:
    return os.path.join(self.path, name)

  def exists(self) -> bool:
    return os.path.exists(self.file(INDEX_FILE))

  def info(self) -> dict:
    if not self.exists():
      raise SearchIndexError(
          f"{self.path} is not an l3-search index (no {INDEX_FILE}); build "
          "one with `l3-search index VIDEOS_DIR --model=EXPORT --index=DIR`")
    info = read_json(self.file(INDEX_FILE))
    if info.get("format_version") != FORMAT_VERSION:
      raise SearchIndexError(
          f"{self.file(INDEX_FILE)}: format_version="
          f"{info.get('format_version')!r}, this code reads {FORMAT_VERSION}")
    return info

  def create(self, model: str, dim: int, hop_seconds: float,
             settings: AnnSettings) -> dict:
    os.makedirs(self.path, exist_ok=True)
    info = {"format_version": FORMAT_VERSION, "model": os.path.abspath(model),
            "dim": dim, "hop_seconds": hop_seconds, "metric": "euclidean",
            "library": ann_library(), "ann": dataclasses.asdict(settings)}
    write_json(self.file(INDEX_FILE), info)
    write_json(self.file(FILES_FILE), {"files": {}, "failed": {},
                                        "num_vectors": 0})
    for name in (ITEMS_FILE, VECTORS_FILE):
      open(self.file(name), "wb").close()
    return info

  def state(self) -> dict:
    return read_json(self.file(FILES_FILE))

  def truncate_to(self, state: dict, dim: int) -> None:
    """Cuts the raw vectors and items back to what `files.json` records
    (the tail a run left when it stopped between appending and recording)."""
    count = state["num_vectors"]
    with open(self.file(VECTORS_FILE), "r+b") as f:
      f.truncate(count * dim * 4)
    with open(self.file(ITEMS_FILE), "rb") as f:
      lines = f.read().split(b"\n")[:count]
    with open(self.file(ITEMS_FILE), "wb") as f:
      f.write(b"".join(line + b"\n" for line in lines))

  def append(self, vectors: np.ndarray, items: Sequence[Item]) -> None:
    with open(self.file(VECTORS_FILE), "ab") as f:
      f.write(np.ascontiguousarray(vectors, np.float32).tobytes())
    with open(self.file(ITEMS_FILE), "a") as f:
      for item in items:
        f.write(json.dumps(dataclasses.asdict(item)) + "\n")

  def vectors(self, dim: int) -> np.ndarray:
    """float32 [n, dim] memory map of the raw vectors."""
    size = os.path.getsize(self.file(VECTORS_FILE))
    if size == 0:
      return np.zeros((0, dim), np.float32)
    return np.memmap(self.file(VECTORS_FILE), np.float32, "r",
                     shape=(size // (4 * dim), dim))

  def items(self) -> list[Item]:
    with open(self.file(ITEMS_FILE)) as f:
      return [Item(**json.loads(line)) for line in f if line.strip()]

  def ann_path(self, modality: str) -> str:
    return self.file(f"{modality}.usearch")
