"""A labelled image folder from the frames of a labelled video dataset.

For the visual linear probe (`l3_tf.evaluation.linear_probe`, dataset "folder") where
ImageNet is not at hand: each video contributes a few evenly spaced frames,
labelled with its class, written as the JPEGs already stored in the dataset
(no re-encoding):

  <output_dir>/<split>/<class name>/<video_id>_<k>.jpg

Videos without a label (-1) are left out.
"""

import os
import re
from typing import Sequence

import numpy as np
import tensorflow_datasets as tfds

from l3_tf.data import input_pipeline
from l3_tf.data import video_example


def _safe(name: str) -> str:
  return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def write_frame_folder(builder, output_dir: str,
                       splits: Sequence[str] = ("train", "test"),
                       frames_per_video: int = 4) -> dict[str, int]:
  """Writes the folder; returns the number of images per split.

  Args:
    builder: a prepared labelled video dataset (`l3_tf.data.video_example`).
    output_dir: the folder's root.
    splits: the dataset splits to write (same names in the folder).
    frames_per_video: frames per video, evenly spaced over its frames.

  Raises:
    ValueError: unlabelled dataset, unknown split, frames_per_video < 1.
  """
  if frames_per_video < 1:
    raise ValueError(f"frames_per_video={frames_per_video} must be >= 1")
  input_pipeline.check_labelled(builder)
  names = builder.info.features["label"].names
  counts = {}
  for split in splits:
    input_pipeline.check_split(builder, split, min_videos=1)
    videos = builder.as_dataset(split=split, shuffle_files=False,
                                decoders=video_example.SKIP_FRAME_DECODING)
    count = 0
    for video in tfds.as_numpy(videos):
      label = int(video["label"])
      if label < 0:
        continue
      folder = os.path.join(output_dir, split, _safe(names[label]))
      os.makedirs(folder, exist_ok=True)
      frames = video["frames"]  # [n] encoded JPEG bytes
      picks = np.unique(np.linspace(0, len(frames) - 1, frames_per_video)
                        .round().astype(int))
      video_id = _safe(video["video_id"].decode("utf-8"))
      for k in picks:
        with open(os.path.join(folder, f"{video_id}_{k}.jpg"), "wb") as f:
          f.write(frames[k])
        count += 1
    counts[split] = count
  return counts
