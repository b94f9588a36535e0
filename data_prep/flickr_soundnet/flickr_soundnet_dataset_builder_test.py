"""flickr_soundnet: dummy tree of 12 videos; unlabelled; stable subset."""

import tensorflow_datasets as tfds

from data_prep import builder_testing
from data_prep import dummy_media
from data_prep import media_builder
from data_prep.flickr_soundnet import flickr_soundnet_dataset_builder as lib


class FlickrSoundnetTest(builder_testing.GeneratedDummyDataTestCase):
  DATASET_CLASS = lib.Builder
  SPLITS = {"train": 9, "validation": 1, "test": 2}
  write_dummy_data = staticmethod(dummy_media.write_flickr)


def test_expected_counts_follow_from_the_hash():
  counts = {"train": 0, "validation": 0, "test": 0}
  for name in dummy_media.FLICKR_VIDEOS:
    counts[media_builder.split_by_hash(name, (0.8, 0.1, 0.1))] += 1
  assert counts == {"train": 9, "validation": 1, "test": 2}


def test_unlabelled_and_max_videos_subset(tmp_path):
  manual = tmp_path / "manual"
  dummy_media.write_flickr(manual)
  config = lib.FlickrConfig(name="six", max_videos=6)
  builder = lib.Builder(data_dir=str(tmp_path / "tfds"), config=config)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual)))
  assert "label" not in builder.info.features
  ids = sorted(ex["video_id"].decode() for split in builder.info.splits
               for ex in tfds.as_numpy(builder.as_dataset(split=split)))
  assert len(ids) == 6
  items = [media_builder.MediaItem(key=n, path=n, source_path=n)
           for n in dummy_media.FLICKR_VIDEOS]
  assert ids == sorted(i.key for i in lib.subset(items, 6))
  assert lib.subset(items, 6) == lib.subset(list(reversed(items)), 6)
  assert [s.path for s in media_builder.read_skip_report(
      builder.data_dir)] == ["2012/Thumbs.db"]
