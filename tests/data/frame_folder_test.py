"""Labelled image folders from the frames of a labelled video dataset."""

import os

import numpy as np
import PIL.Image
import pytest
import tensorflow_datasets as tfds

from l3_tf.data import frame_folder
from l3_tf.data import input_pipeline
from l3_tf.data import video_example
from l3_tf.evaluation import linear_probe
from tests import labelled_fake_videos


def test_frames_of_labelled_videos_become_an_image_folder(tmp_path):
  name = labelled_fake_videos.build(str(tmp_path / "data"))
  builder = input_pipeline.load_builder(name, str(tmp_path / "data"))
  out = tmp_path / "frames"
  counts = frame_folder.write_frame_folder(builder, str(out),
                                           ("train", "test"), 3)
  # 9 labelled train videos (the unlabelled one is left out), 3 test videos.
  assert counts == {"train": 27, "test": 9}
  assert sorted(os.listdir(out / "train")) == sorted(labelled_fake_videos.CLASSES)
  stored = {v["video_id"].decode(): v for v in tfds.as_numpy(builder.as_dataset(
      split="test", decoders=video_example.SKIP_FRAME_DECODING))}
  # The stored JPEG bytes, first / middle / last frame, not re-encoded.
  video = stored["lab_test_2_0"]
  last = len(video["frames"]) - 1
  for k in (0, last // 2, last):
    path = out / "test" / "blue_high" / f"lab_test_2_0_{k}.jpg"
    assert path.read_bytes() == video["frames"][k]
  image = np.asarray(PIL.Image.open(path))
  assert image[24, 32, 2] > 150 > image[24, 32, 0]  # blue: its class colour
  # The linear probe reads it as a labelled folder.
  probe = linear_probe._builder(linear_probe.ProbeConfig(
      dataset="folder", image_folder=str(out)))
  assert probe.info.features["label"].num_classes == 3
  with pytest.raises(ValueError, match="frames_per_video=0"):
    frame_folder.write_frame_folder(builder, str(out), ("train",), 0)
