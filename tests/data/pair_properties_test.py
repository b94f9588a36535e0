"""The sampler's contract on decoded videos: the synthetic set and real clips.

The same checks as on the fake videos (`pair_checks`), on datasets built by
the real decoder: the generated `synthetic_av` (tiny config) and the 20 real
clips of ../shared/data/av_clips through `video_folder`.
"""

import dataclasses

import pytest
import tensorflow_datasets as tfds

from experiments import configs
from l3_tf.data import input_pipeline
from tests import pair_checks
from tests import testing


def _config(dataset: str, data_dir: str, split: str):
  base = configs.get_config("test")
  return dataclasses.replace(base, data=dataclasses.replace(
      base.data, dataset=dataset, data_dir=data_dir, train_split=split,
      eval_split=split, group_videos=4, shuffle_videos=32))


def _audio_lengths(builder, split):
  return {ex["video_id"].decode(): len(ex["audio"]) for ex in tfds.as_numpy(
      builder.as_dataset(split=split, decoders={
          "frames": tfds.decode.SkipDecoding()}))}


def _check(config, split, num_batches):
  builder = input_pipeline.load_builder(config.data.dataset,
                                        config.data.data_dir)
  lengths = _audio_lengths(builder, split)
  train = pair_checks.collect(input_pipeline.train_dataset(
      config, 8, seed=0, with_metadata=True), num_batches)
  assert pair_checks.check_pair_properties(train, lengths) == 8 * num_batches
  evaluation = pair_checks.collect(input_pipeline.eval_dataset(
      config, split, num_pairs=32, with_metadata=True), 10)
  assert pair_checks.check_pair_properties(evaluation, lengths,
                                           max_gain_delta=0.0) == 32
  return train, lengths


def test_synthetic_av_pairs(tmp_path_factory):
  from data_prep import synthetic_av
  data_dir = str(tmp_path_factory.mktemp("synthetic"))
  builder = synthetic_av.build(data_dir, config="tiny")
  config = _config(builder.info.full_name.rsplit("/", 1)[0], data_dir, "train")
  train, lengths = _check(config, "train", 8)
  # 8 batches x 4 videos: every one of the 8 training videos is used.
  used = {v.decode() for _, _, m in train for v in m["frame_video_id"]}
  assert used == set(lengths)


@pytest.mark.real_data
@pytest.mark.slow
def test_real_clip_pairs(tmp_path_factory):
  clips = testing.shared_data("av_clips")
  data_dir = str(tmp_path_factory.mktemp("av_clips"))
  builder = testing.build_video_folder(data_dir, clips)
  config = _config(builder.info.full_name.rsplit("/", 1)[0], data_dir, "train")
  # 19 of the 20 clips are built (bento.mp4 has < 1 s of audio); 12 batches
  # of 4 videos go 2.5 times through them, across epoch boundaries.
  train, lengths = _check(config, "train", 12)
  assert len(lengths) >= 19
  used = {v.decode() for _, _, m in train for v in m["frame_video_id"]}
  assert len(used) == len(lengths)
