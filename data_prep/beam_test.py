"""The builders as Apache Beam pipelines (DirectRunner): the scale-out path.

The same decoders run in Beam workers; skipped files come back through a
side output and land in the same skip report. A Beam build yields the same
examples as a local one.
"""

import numpy as np
import pytest
import tensorflow_datasets as tfds

import data_prep.synthetic_av as synthetic_av
from data_prep import dummy_media
from data_prep import media_builder
from data_prep import video_builder
from data_prep.synthetic_av import synthetic_av_dataset_builder
from data_prep.video_folder import video_folder_dataset_builder
from l3_tf.data import video_example

beam = pytest.importorskip("apache_beam")


def _direct_runner():
  options = beam.options.pipeline_options.PipelineOptions(
      ["--runner=DirectRunner", "--direct_num_workers=1"])
  return tfds.download.DownloadConfig(beam_options=options,
                                      try_download_gcs=False)


def _by_id(builder, split):
  ds = builder.as_dataset(split=split,
                          decoders=video_example.SKIP_FRAME_DECODING)
  return {ex["video_id"]: ex for ex in tfds.as_numpy(ds)}


def test_synthetic_av_with_the_direct_runner_matches_the_local_build(
    tmp_path):
  overrides = dict(num_train=3, num_validation=1, num_test=1,
                   seconds_per_video=2.0)
  local = synthetic_av.build(tmp_path / "local", "tiny", num_workers=1,
                             **overrides)
  config = local.builder_config
  with_beam = synthetic_av_dataset_builder.Builder(
      data_dir=str(tmp_path / "beam"), config=config)
  with_beam.download_and_prepare(download_dir=str(tmp_path / "downloads"),
                                 download_config=_direct_runner())
  for split, count in (("train", 3), ("validation", 1), ("test", 1)):
    assert with_beam.info.splits[split].num_examples == count
    a, b = _by_id(local, split), _by_id(with_beam, split)
    assert sorted(a) == sorted(b)
    for key, ex in a.items():
      np.testing.assert_array_equal(ex["audio"], b[key]["audio"])
      assert list(ex["frames"]) == list(b[key]["frames"])
      assert ex["label"] == b[key]["label"]
  assert media_builder.read_skip_report(with_beam.data_dir) == []


def test_beam_build_reports_skipped_files(tmp_path):
  videos = tmp_path / "videos"
  (videos / "cats").mkdir(parents=True)
  dummy_media.write_video(videos / "cats" / "good.mp4", seconds=1.2, fps=10,
                          width=64, height=48)
  dummy_media.write_video(videos / "cats" / "mute.mp4", seconds=1.2, fps=10,
                          width=64, height=48, audio=False)
  dummy_media.write_video(videos / "cats" / "short.webm", seconds=0.5, fps=10,
                          width=64, height=48)
  (videos / "cats" / "empty.mp4").write_bytes(b"")
  (videos / "notes.txt").write_text("not a video")
  expected = {"cats/mute.mp4": "no audio stream",
              "cats/short.webm": "too short", "cats/empty.mp4": "empty file",
              "notes.txt": "not a video file"}
  # Everything in train: Beam cannot leave out a split whose files all
  # fail (see MediaBuilder._media_splits), so none may be all-bad here.
  config = video_builder.VideoConfig(name="all_train",
                                     split_fractions=(1.0, 0.0, 0.0))
  builder = video_folder_dataset_builder.Builder(
      data_dir=str(tmp_path / "tfds"), config=config)
  download_config = _direct_runner()
  download_config.manual_dir = str(videos)
  builder.download_and_prepare(download_config=download_config)
  assert builder.info.splits["train"].num_examples == 1
  skips = {s.path: s.reason
           for s in media_builder.read_skip_report(builder.data_dir)}
  assert set(skips) == set(expected)
  for path, reason in skips.items():
    assert expected[path] in reason, (path, reason)
