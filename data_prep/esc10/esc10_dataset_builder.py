"""esc10: ESC-10, the original stand-alone release (10 classes x 40 clips).

Layout (the release's zip, extracted into the manual dir, optionally inside
one folder such as `ESC-10-master/`):

  <manual_dir>/001 - Dog bark/1-100032-A.ogg
  ...
  <manual_dir>/010 - Fire crackling/5-....ogg

Label = the folder name without its number ("Dog bark"), classes ordered by
that number; fold = the first digit of the file name. Splits `fold1` ...
`fold5` (80 clips each): cross-validate with e.g. split="fold1+fold2+...".

  tfds build data_prep/esc10 --manual_dir=../shared/data/esc10 \\
      --data_dir=/tmp/tfds
"""

import re

from etils import epath
import tensorflow_datasets as tfds

from data_prep import audio_builder
from data_prep import media_builder
from l3_tf.data import audio_example

_CLASS_DIR = re.compile(r"^(\d{3}) - (.+)$")
_FOLD = re.compile(r"^([1-5])-")

_DESCRIPTION = """\
ESC-10 (Piczak 2015): 400 five-second environmental recordings, 10 classes x
40, prearranged into 5 folds. Decoded to mono 48 kHz int16 PCM (the whole
clip), label and fold kept.
"""


def class_dirs(manual_dir: epath.Path) -> list[tuple[int, str, epath.Path]]:
  """(number, class name, folder) of the `NNN - Name` folders, by number."""
  for root in [manual_dir] + sorted(p for p in manual_dir.iterdir()
                                    if p.is_dir()):
    found = []
    for child in root.iterdir():
      match = _CLASS_DIR.match(child.name)
      if match and child.is_dir():
        found.append((int(match.group(1)), match.group(2), child))
    if found:
      return sorted(found)
  return []


class Builder(audio_builder.AudioBuilder):
  """ESC-10 stand-alone release; see the module docstring."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Extract the ESC-10 release (github.com/karoldvl/ESC-10, master.zip) into the
manual dir, so that it holds the ten class folders:
  <manual_dir>/001 - Dog bark/1-100032-A.ogg ... <manual_dir>/010 - Fire crackling/
(or <manual_dir>/ESC-10-master/001 - Dog bark/...).
"""

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=_DESCRIPTION,
        features=audio_example.audio_features(with_fold=True),
        homepage="https://github.com/karoldvl/ESC-10",
        citation=audio_builder.ESC_CITATION,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    manual_dir = epath.Path(dl_manager.manual_dir)
    classes = class_dirs(manual_dir)
    if not classes:
      raise media_builder.missing_paths_error(
          self.name, manual_dir,
          ["001 - Dog bark/1-100032-A.ogg", "... (10 class folders)"],
          self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    self.info.features["label"].names = [name for _, name, _ in classes]
    root = classes[0][2].parent
    splits = media_builder.fold_splits(5)
    for _, name, folder in classes:
      for path in media_builder.list_files(folder):
        source_path = media_builder.relative(path, root)
        fold = _FOLD.match(path.name)
        if not media_builder.is_audio_path(path):
          self.record_skip(source_path, "-", "not an audio file")
        elif fold is None:
          self.record_skip(source_path, "-", "no fold: the file name does "
                           "not start with a digit 1-5 and a dash")
        else:
          splits[f"fold{fold.group(1)}"].append(media_builder.MediaItem(
              key=source_path, path=str(path), source_path=source_path,
              label=name, extra={"fold": int(fold.group(1))}))
    return self._media_splits(splits)
