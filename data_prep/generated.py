"""The marker that tells a generated release from the real dataset.

`data_prep.dummy_media` writes `MARKER` at the root of every release it
generates (tones and stand-in videos in a dataset's layout, some at the real
release's size); the builders (`media_builder.MediaBuilder`) record whether
the manual dir holds it (`builder.info.metadata["generated"]`), and the
protocols never call a build of generated data the official figure.
"""

import functools
import os

from etils import epath

MARKER = "GENERATED_BY_L3_TF_DUMMY_MEDIA.txt"


def marker_text(writer: str) -> str:
  return (f"Written by data_prep.dummy_media.{writer}: generated data in a "
          "dataset's layout, NOT the real dataset. Builds of this folder are "
          'recorded as generated (builder.info.metadata["generated"]) and '
          "their results never as the official figure.\n")


def writes_marker(writer):
  """Decorates a `write_<dataset>(root, ...)` of dummy_media: `MARKER` goes
  to `root` first (so that a release cut short is marked too)."""

  @functools.wraps(writer)
  def write(root, *args, **kwargs):
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, MARKER), "w") as f:
      f.write(marker_text(writer.__name__))
    return writer(root, *args, **kwargs)

  return write


def find_marker(manual_dir: epath.PathLike) -> epath.Path | None:
  """`MARKER` in the manual dir or in a folder directly inside it (a
  release extracted inside its top folder, as `UrbanSound8K/`), or None."""
  manual_dir = epath.Path(manual_dir)
  if (manual_dir / MARKER).exists():
    return manual_dir / MARKER
  # One glob, not a stat per entry: a manual dir may hold 500k videos on GCS.
  return next(iter(sorted(manual_dir.glob(f"*/{MARKER}"))), None)


def is_marker(path: epath.PathLike, root: epath.PathLike) -> bool:
  """Whether `path` is the marker at `root` (a builder that lists every
  file of its manual dir leaves it out: it is not a media file)."""
  path, root = epath.Path(path), epath.Path(root)
  return path.name == MARKER and path.parent == root
