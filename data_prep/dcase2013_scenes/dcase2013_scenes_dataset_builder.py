"""dcase2013_scenes: DCASE 2013 acoustic scene classification (10 scenes).

Layout (the two official zips extracted into the manual dir):

  <manual_dir>/scenes_stereo/bus01.wav ...          public development set:
                                                    the `train` split
  <manual_dir>/scenes_stereo_testset/bus01.wav ...  private set released
                                                    after the challenge: the
                                                    `test` split

(either folder may hold its files one level deeper, as some copies do).
Label = the file name without its two-digit number. 10 recordings per scene
in each set, 30 s, 44.1 kHz stereo; stored as mono 48 kHz int16.

  tfds build data_prep/dcase2013_scenes --manual_dir=/path/to/dcase2013 \\
      --data_dir=/tmp/tfds
"""

import re

from etils import epath
import tensorflow_datasets as tfds

from data_prep import audio_builder
from data_prep import media_builder
from l3_tf.data import audio_example

SCENES = ("bus", "busystreet", "office", "openairmarket", "park",
          "quietstreet", "restaurant", "supermarket", "tube", "tubestation")
SPLIT_FOLDERS = {"train": "scenes_stereo", "test": "scenes_stereo_testset"}
_NAME = re.compile(r"^([a-z]+)(\d{2})\.wav$")

_DESCRIPTION = """\
DCASE 2013 scene classification (Stowell et al. 2015): 10 acoustic scenes,
the public development set (train, 100 x 30 s) and the private evaluation set
(test, 100 x 30 s). Decoded to mono 48 kHz int16 PCM.
"""


class Builder(audio_builder.AudioBuilder):
  """DCASE 2013 scenes, official train/test sets; see the module docstring."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Extract scenes_stereo.zip (development set) and scenes_stereo_testset.zip
(evaluation set) of the DCASE 2013 scene classification task into the manual
dir:
  <manual_dir>/scenes_stereo/bus01.wav ... tubestation10.wav
  <manual_dir>/scenes_stereo_testset/bus01.wav ... tubestation10.wav
"""

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=_DESCRIPTION,
        features=audio_example.audio_features(label_names=list(SCENES)),
        homepage="https://dcase.community/challenge2013/",
        citation="D. Stowell, D. Giannoulis, E. Benetos, M. Lagrange, M. D. "
                 "Plumbley. Detection and classification of acoustic scenes "
                 "and events. IEEE Trans. Multimedia 17(10), 2015.",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    manual_dir = epath.Path(dl_manager.manual_dir)
    missing = [f"{folder}/bus01.wav ..." for folder in SPLIT_FOLDERS.values()
               if not (manual_dir / folder).is_dir()]
    if missing:
      raise media_builder.missing_paths_error(
          self.name, manual_dir, missing, self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    splits = {}
    for split, folder in SPLIT_FOLDERS.items():
      splits[split] = []
      for path in media_builder.list_files(manual_dir / folder):
        source_path = media_builder.relative(path, manual_dir)
        match = _NAME.match(path.name)
        if match is None or match.group(1) not in SCENES:
          self.record_skip(source_path, split, "not a <scene><NN>.wav file "
                           f"of the 10 scenes {SCENES}")
          continue
        splits[split].append(media_builder.MediaItem(
            key=source_path, path=str(path), source_path=source_path,
            label=match.group(1)))
    return self._media_splits(splits)
