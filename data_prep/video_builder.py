"""What the video builders share: their config, decoder and folder listing.

Every video builder (video_folder, kinetics_sounds, flickr_soundnet,
synthetic_av) decodes with `VideoDecoder` (the policy of
`data_prep.video_decoding`) into the stored form of `l3_tf.data.video_example`;
skips, splits, threads and Beam come from `data_prep.media_builder`.
"""

import dataclasses
from collections.abc import Sequence

from etils import epath
import tensorflow_datasets as tfds

from data_prep import generated
from data_prep import media_builder
from data_prep import video_decoding
from l3_tf.data import media
from l3_tf.data import media_video
from l3_tf.data import video_example

# Re-exported: builders and tests use them through this module too.
MediaItem = media_builder.MediaItem
Skip = media_builder.Skip
SPLITS = media_builder.SPLITS
split_by_hash = media_builder.split_by_hash
read_skip_report = media_builder.read_skip_report


@dataclasses.dataclass(eq=False)
class VideoConfig(tfds.core.BuilderConfig):
  """Options of a video builder (all of them change the stored examples).

  Attributes:
    frames_per_second: frame sampling rate (see
      `l3_tf.data.video_example.DEFAULT_FRAMES_PER_SECOND`).
    max_seconds: keep the first this many seconds (10 as in the paper); None
      keeps whole videos.
    min_seconds: shorter videos are skipped (see `video_decoding`).
    skip_silent: skip videos whose audio peak is below
      silence_threshold_dbfs.
    silence_threshold_dbfs: see `video_decoding.Policy`.
    jpeg_quality: quality of the stored frames.
    split_fractions: train / validation / test fractions of the split by
      stable hash (builders whose source defines the splits ignore it).
  """

  frames_per_second: float = video_example.DEFAULT_FRAMES_PER_SECOND
  max_seconds: float | None = video_example.DEFAULT_MAX_SECONDS
  min_seconds: float = 1.0
  skip_silent: bool = True
  silence_threshold_dbfs: float = -60.0
  jpeg_quality: int = media.JPEG_QUALITY
  split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)

  def __post_init__(self):
    self.split_fractions = media_builder.check_split_fractions(
        self.split_fractions)
    self.decode_options()  # validates the decoding options early

  def decode_options(self) -> media_video.DecodeOptions:
    return media_video.DecodeOptions(frames_per_second=self.frames_per_second,
                               max_seconds=self.max_seconds,
                               short_side=video_example.SHORT_SIDE,
                               jpeg_quality=self.jpeg_quality,
                               sample_rate_hz=video_example.SAMPLE_RATE_HZ)

  def policy(self) -> video_decoding.Policy:
    return video_decoding.Policy(
        min_seconds=self.min_seconds, skip_silent=self.skip_silent,
        silence_threshold_dbfs=self.silence_threshold_dbfs)


class VideoDecoder:
  """MediaItem -> the stored video example (picklable, for Beam workers)."""

  def __init__(self, options: media_video.DecodeOptions,
               policy: video_decoding.Policy):
    self.options = options
    self.policy = policy

  def __call__(self, item: MediaItem) -> dict:
    decoded = video_decoding.decode_for_dataset(item.path, self.options,
                                                self.policy)
    return video_example.make_example(decoded, item.key, item.source_path,
                                      item.label)


class VideoBuilder(media_builder.MediaBuilder, skip_registration=True):
  """Base of the video builders (config: a `VideoConfig`)."""

  def _decoder(self) -> VideoDecoder:
    return VideoDecoder(self.builder_config.decode_options(),
                        self.builder_config.policy())

  def _manual_folder_items(self, manual_dir: epath.PathLike,
                           labelled: bool) -> dict[str, list[MediaItem]]:
    """`folder_items` of the manual dir, its non-video files recorded as skips.

    Raises:
      FileNotFoundError: the manual dir holds no video file.
    """
    root = epath.Path(manual_dir)
    items, skips = folder_items(root, self.builder_config.split_fractions,
                                labelled)
    if not any(items.values()):
      raise media_builder.missing_paths_error(
          self.name, root,
          [f"{'<class>' if labelled else '<any>'}/<video>.mp4 "
           "(any video file)"], self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    for skip in skips:
      self.record_skip(*skip)
    return items


def folder_items(root: epath.Path, split_fractions: Sequence[float],
                 labelled: bool) -> tuple[dict[str, list[MediaItem]],
                                          list[Skip]]:
  """Lists a folder tree of videos and splits it by stable hash.

  Args:
    root: the folder (e.g. the manual dir).
    split_fractions: train / validation / test fractions.
    labelled: label = the top-level sub-folder name; videos directly in root
      get -1 ("no label").

  Returns:
    ({split: items}, skips for the files that are not videos).
  """
  items = {split: [] for split in SPLITS}
  skips = []
  for path in media_builder.list_files(root):
    if generated.is_marker(path, root):
      continue  # not a video: the build records it (media_builder)
    source_path = media_builder.relative(path, root)
    if not video_decoding.is_video_path(path):
      skips.append(Skip(source_path, "-", "not a video file (extension "
                        f"{path.suffix or 'none'!r})"))
      continue
    parts = source_path.split("/")
    label = None
    if labelled:
      label = parts[0] if len(parts) > 1 else -1
    split = split_by_hash(source_path, split_fractions)
    items[split].append(MediaItem(key=source_path, path=str(path),
                                  source_path=source_path, label=label))
  return items, skips
