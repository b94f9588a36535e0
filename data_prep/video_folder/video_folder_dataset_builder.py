"""video_folder: any folder tree of videos -> the stored video examples.

The path for a user's own videos. Every file under the manual dir is
considered: files with a video extension are decoded (4 fps JPEG frames,
48 kHz mono int16 audio, first 10 s by default), the others are recorded in
the skip report. Label = the top-level sub-folder name (`dogs/a.mp4` ->
"dogs"); a video directly in the manual dir gets label -1 (no label). Splits
by a stable hash of the relative path (80/10/10 by default).

  tfds build data_prep/video_folder --manual_dir=/path/to/videos \\
      --data_dir=/tmp/tfds
  # other options: --config='{"name": "all_2fps", "max_seconds": null,
  #                          "frames_per_second": 2}'
"""

import tensorflow_datasets as tfds

from data_prep import video_builder
from l3_tf.data import video_example

_DESCRIPTION = """\
A user's folder of videos, decoded for audio-visual correspondence: frames
sampled at 4 fps (short side 256, JPEG, exact times), audio mono 48 kHz int16,
the first 10 seconds. Label = top-level sub-folder (-1 at the root); splits
by a stable hash of the path. Files that cannot be used are listed with the
reason in skipped_files.tsv next to the prepared dataset.
"""


class Builder(video_builder.VideoBuilder):
  """Videos from a folder tree; see the module docstring."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Put your videos in the manual dir (--manual_dir), optionally one sub-folder
per class:
  <manual_dir>/dogs/a.mp4, <manual_dir>/drums/b.webm, <manual_dir>/c.avi ...
Any container FFmpeg reads (mp4, webm, avi, mkv, mov, ...). Files with other
extensions are listed in skipped_files.tsv, not decoded.
"""
  BUILDER_CONFIGS = [video_builder.VideoConfig(
      name="default",
      description="4 fps, first 10 s, 80/10/10 split by hash of the path.")]

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=_DESCRIPTION,
        features=video_example.video_features(labelled=True),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    items = self._manual_folder_items(dl_manager.manual_dir,
                                      labelled=True)
    labels = sorted({item.label for split in items.values() for item in split
                     if item.label != -1})
    self.info.features["label"].names = labels
    return self._media_splits(items)
