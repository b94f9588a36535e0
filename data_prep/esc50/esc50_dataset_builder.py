"""esc50: ESC-50 in its official layout (50 classes x 40 clips, 5 folds).

Layout (the official repository's zip, extracted into the manual dir,
optionally inside `ESC-50-master/`):

  <manual_dir>/meta/esc50.csv   filename,fold,target,category,esc10,src_file,take
  <manual_dir>/audio/{fold}-{src}-{take}-{target}.wav

Label = `category`, class index = `target`; splits `fold1` ... `fold5`
(400 clips each) from the `fold` column.

  tfds build data_prep/esc50 --manual_dir=/path/to/ESC-50-master \\
      --data_dir=/tmp/tfds
"""

import csv
import io

from etils import epath
import tensorflow_datasets as tfds

from data_prep import audio_builder
from data_prep import media_builder
from l3_tf.data import audio_example

_DESCRIPTION = """\
ESC-50 (Piczak 2015): 2000 five-second environmental recordings, 50 classes
x 40, in 5 official folds. Decoded to mono 48 kHz int16 PCM (the whole clip),
label (target / category) and fold kept.
"""
_META = "meta/esc50.csv"


def find_root(manual_dir: epath.Path) -> epath.Path | None:
  for root in (manual_dir, manual_dir / "ESC-50-master"):
    if (root / _META).exists():
      return root
  return None


def read_meta(root: epath.Path) -> list[dict[str, str]]:
  rows = list(csv.DictReader(io.StringIO((root / _META).read_text())))
  needed = {"filename", "fold", "target", "category"}
  if not rows or not needed <= set(rows[0]):
    raise ValueError(f"{root / _META}: expected the columns {sorted(needed)},"
                     f" got {sorted(rows[0]) if rows else 'no rows'}")
  return rows


def label_names(rows: list[dict[str, str]]) -> list[str]:
  """Category names indexed by target; errors on gaps or contradictions."""
  return audio_builder.label_names(rows, "target", "category", "esc50.csv")


class Builder(audio_builder.AudioBuilder):
  """ESC-50 official layout; see the module docstring."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Extract the ESC-50 repository (github.com/karoldvl/ESC-50, master.zip) into
the manual dir, so that it holds
  <manual_dir>/meta/esc50.csv and <manual_dir>/audio/1-100032-A-0.wav ...
(or the same inside <manual_dir>/ESC-50-master/).
"""

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=_DESCRIPTION,
        features=audio_example.audio_features(with_fold=True),
        homepage="https://github.com/karoldvl/ESC-50",
        citation=audio_builder.ESC_CITATION,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    manual_dir = epath.Path(dl_manager.manual_dir)
    root = find_root(manual_dir)
    if root is None:
      raise media_builder.missing_paths_error(
          self.name, manual_dir, [_META, "audio/1-100032-A-0.wav ..."],
          self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    rows = read_meta(root)
    self.info.features["label"].names = label_names(rows)
    listed = set()
    splits = media_builder.fold_splits(5)
    for row in rows:
      source_path = f"audio/{row['filename']}"
      listed.add(source_path)
      path = root / source_path
      if not path.exists():
        self.record_skip(source_path, f"fold{row['fold']}",
                         "listed in meta/esc50.csv but missing")
        continue
      splits[f"fold{int(row['fold'])}"].append(media_builder.MediaItem(
          key=source_path, path=str(path), source_path=source_path,
          label=int(row["target"]), extra={"fold": int(row["fold"])}))
    for path in media_builder.list_files(root / "audio"):
      source_path = media_builder.relative(path, root)
      if source_path not in listed:
        self.record_skip(source_path, "-", "not listed in meta/esc50.csv")
    return self._media_splits(splits)
