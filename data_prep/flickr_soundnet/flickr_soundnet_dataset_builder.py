"""flickr_soundnet: unlabelled Flickr videos (the paper's AVC training set).

Manual dir: the Flickr-SoundNet videos in any folder tree (mp4 or any other
video container). No labels; the first 10 s of each video; splits by a stable
hash of the relative path, 80 / 10 / 10 (the paper's 400k / 50k / 50k of a
500k random subset). `max_videos` keeps a stable pseudo-random subset (the
videos with the smallest salted hash), independent of the split hash.

  tfds build data_prep/flickr_soundnet --manual_dir=/path/to/flickr \\
      --data_dir=/tmp/tfds
  # the paper's subset:
  #   --config='{"name": "500k", "max_videos": 500000}'
  # at scale, on a Beam runner:
  #   --beam_pipeline_options="runner=DataflowRunner,project=...,..."
"""

import dataclasses

from absl import logging
import tensorflow_datasets as tfds

from data_prep import media_builder
from data_prep import video_builder
from l3_tf.data import video_example

_DESCRIPTION = """\
Flickr-SoundNet (Aytar et al. 2016) videos, unlabelled, for audio-visual
correspondence: the first 10 s of each, frames at 4 fps (short side 256,
JPEG, exact times), audio mono 48 kHz int16; 80/10/10 split by a stable hash.
"""


@dataclasses.dataclass(eq=False)
class FlickrConfig(video_builder.VideoConfig):
  """VideoConfig plus an optional stable random subset size."""

  max_videos: int | None = None


def subset(items: list[media_builder.MediaItem],
           max_videos: int | None) -> list[media_builder.MediaItem]:
  """The `max_videos` items with the smallest salted hash (all if None)."""
  if max_videos is None or len(items) <= max_videos:
    return items
  ranked = sorted(items, key=lambda item: media_builder.hash_fraction(
      "subset:" + item.key))
  return sorted(ranked[:max_videos])


class Builder(video_builder.VideoBuilder):
  """Unlabelled Flickr videos; see the module docstring."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Put the Flickr-SoundNet videos (any folder tree, any video container) in the
manual dir:
  <manual_dir>/<any>/<path>/<video>.mp4 ...
"""
  BUILDER_CONFIGS = [FlickrConfig(
      name="default",
      description="All videos, first 10 s, 4 fps, 80/10/10 by hash.")]

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=_DESCRIPTION,
        features=video_example.video_features(),
        homepage="https://projects.csail.mit.edu/soundnet/",
        citation="Y. Aytar, C. Vondrick, A. Torralba. SoundNet: Learning "
                 "Sound Representations from Unlabeled Video. NIPS 2016.",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    items = self._manual_folder_items(dl_manager.manual_dir,
                                      labelled=False)
    everything = sorted(item for split in items.values() for item in split)
    kept = set(subset(everything, self.builder_config.max_videos))
    if len(kept) < len(everything):
      logging.info("%s: max_videos=%d keeps %d of %d videos", self.name,
                   self.builder_config.max_videos, len(kept), len(everything))
    items = {split: [item for item in split_items if item in kept]
             for split, split_items in items.items()}
    return self._media_splits(items)
