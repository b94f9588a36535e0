"""kinetics_sounds: the user's Kinetics clips, filtered to Kinetics-Sounds.

Manual dir:

  <manual_dir>/*.csv   the Kinetics annotation CSVs (train / validate /
                       test), columns youtube_id,time_start,time_end,label,
                       split (any order; more columns are ignored)
  <manual_dir>/**/<youtube_id>_<time_start:06d>_<time_end:06d>.mp4
                       the clips, anywhere below the manual dir, any video
                       extension (a clip named just `<youtube_id>.mp4` is
                       found too)

Rows whose label is in the class list (`classes.txt` next to this file: the
34 classes of PAPER.md section 4; replace it, or pass
`--config='{"name": "mine", "class_list": "/path/list.txt"}'`) become
examples; split from the CSV's `split` column (train / val or validate /
test). A listed clip whose file is absent is recorded in the skip report.

  tfds build data_prep/kinetics_sounds --manual_dir=/path/to/kinetics \\
      --data_dir=/tmp/tfds
"""

import csv
import dataclasses
import io

from etils import epath
import tensorflow_datasets as tfds

from data_prep import media_builder
from data_prep import video_builder
from data_prep import video_decoding
from l3_tf.data import video_example

CLASS_LIST = epath.Path(__file__).parent / "classes.txt"
CSV_COLUMNS = ("youtube_id", "time_start", "time_end", "label", "split")
_SPLITS = {"train": "train", "val": "validation", "validate": "validation",
           "validation": "validation", "test": "test"}

_DESCRIPTION = """\
Kinetics-Sounds (Arandjelovic & Zisserman 2017): the Kinetics clips of the
human-action classes whose sound matters (34 in the paper), 10-second clips
decoded to 4 fps JPEG frames with exact times and 48 kHz mono int16 audio.
"""


def read_class_list(path: epath.PathLike) -> list[str]:
  """Class names, one per line; '#' comments and blank lines ignored."""
  names = []
  for line in epath.Path(path).read_text().splitlines():
    name = line.split("#", 1)[0].strip()
    if name:
      names.append(name)
  if len(set(names)) != len(names):
    raise ValueError(f"{path}: duplicate class names")
  if not names:
    raise ValueError(f"{path}: no class names")
  return names


def clip_name(youtube_id: str, start: str, end: str) -> str:
  """`<youtube_id>_<start:06d>_<end:06d>`, the usual Kinetics clip name."""
  return f"{youtube_id}_{int(float(start)):06d}_{int(float(end)):06d}"


@dataclasses.dataclass(eq=False)
class KineticsSoundsConfig(video_builder.VideoConfig):
  """VideoConfig plus the class list file (None: classes.txt here)."""

  class_list: str | None = None

  def class_names(self) -> list[str]:
    return read_class_list(self.class_list or CLASS_LIST)


class Builder(video_builder.VideoBuilder):
  """Kinetics-Sounds from the user's clips; see the module docstring."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Put the Kinetics annotation CSVs (columns youtube_id, time_start, time_end,
label, split) in the manual dir, and the downloaded clips anywhere below it,
named <youtube_id>_<time_start:06d>_<time_end:06d>.mp4 (any video extension):
  <manual_dir>/train.csv, <manual_dir>/validate.csv, <manual_dir>/test.csv
  <manual_dir>/clips/abc123XYZ_000010_000020.mp4 ...
"""
  BUILDER_CONFIGS = [KineticsSoundsConfig(
      name="default",
      description="The 34 classes of classes.txt, 4 fps, first 10 s.")]

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=_DESCRIPTION,
        features=video_example.video_features(
            label_names=self.builder_config.class_names()),
        homepage="https://github.com/cvdfoundation/kinetics-dataset",
        citation="R. Arandjelovic, A. Zisserman. Look, Listen and Learn. "
                 "ICCV 2017.",
    )

  def _read_rows(self, manual_dir: epath.Path) -> list[dict[str, str]]:
    rows = []
    for path in sorted(manual_dir.glob("*.csv")):
      table = list(csv.DictReader(io.StringIO(path.read_text())))
      if table and set(CSV_COLUMNS) <= set(table[0]):
        rows.extend(table)
    if not rows:
      raise media_builder.missing_paths_error(
          self.name, manual_dir,
          ["train.csv (youtube_id,time_start,time_end,label,split)",
           "validate.csv", "test.csv"], self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    return rows

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    manual_dir = epath.Path(dl_manager.manual_dir)
    classes = set(self.builder_config.class_names())
    rows = self._read_rows(manual_dir)
    clips = {}  # file stem -> path
    for path in media_builder.list_files(manual_dir):
      if video_decoding.is_video_path(path):
        clips.setdefault(path.stem, path)
    items = {split: [] for split in media_builder.SPLITS}
    seen = set()
    for row in rows:
      if row["label"] not in classes:
        continue
      name = clip_name(row["youtube_id"], row["time_start"], row["time_end"])
      split = _SPLITS.get(row["split"].strip().lower())
      if split is None:
        self.record_skip(name, "-", f"unknown split {row['split']!r} "
                         f"(expected one of {sorted(_SPLITS)})")
        continue
      if name in seen:
        continue  # the same clip listed twice
      seen.add(name)
      path = clips.get(name) or clips.get(row["youtube_id"])
      if path is None:
        self.record_skip(f"{name}.mp4", split, "clip not found below the "
                         "manual dir (listed in the CSV)")
        continue
      source_path = media_builder.relative(path, manual_dir)
      items[split].append(media_builder.MediaItem(
          key=name, path=str(path), source_path=source_path,
          label=row["label"]))
    return self._media_splits(items)
