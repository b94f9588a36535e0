"""Damaged TFRecord shards while training and evaluating (issue 14).

Before: a shard with flipped bytes or cut short stopped training (and
experiments.eval_avc) with a `DataLossError` "corrupted record at N" that
named no file, and no checkpoint of the steps already done.
"""

import dataclasses
import glob
import os
import shutil

import pytest
import tensorflow as tf

from l3_tf.data import bad_records
from l3_tf.data import input_pipeline
from l3_tf.model import networks as model_lib
from l3_tf.training import evaluate
from l3_tf.training import train
from l3_tf.training import workdir as workdir_lib


def _train_shard(data_dir):
  (path,) = glob.glob(os.path.join(data_dir, "*", "*", "*-train.tfrecord-*"))
  return path


def _damaged_copy(fake_videos_dir, tmp_path, record: int, how: str):
  data_dir = str(tmp_path / "data")
  shutil.copytree(fake_videos_dir, data_dir)
  shard = _train_shard(data_dir)
  starts = bad_records.record_starts(shard)
  with open(shard, "r+b") as f:
    if how == "truncate":  # a copy that stopped inside the record
      f.truncate(starts[record] + 100)
    else:  # 64 flipped bytes inside the record's data
      f.seek(starts[record] + 200)
      chunk = f.read(64)
      f.seek(starts[record] + 200)
      f.write(bytes(b ^ 0xFF for b in chunk))
  return data_dir, shard, len(starts)


def _config(fake_config, data_dir, **train):
  # No shuffling, groups of 3 videos, 2 positives each: the stream reads the
  # shard in order, 3 steps of 4 pairs per group of videos.
  return dataclasses.replace(
      fake_config,
      data=dataclasses.replace(fake_config.data, data_dir=data_dir,
                               shuffle_videos=1, group_videos=3,
                               pairs_per_video=2, eval_split="test"),
      train=dataclasses.replace(fake_config.train, summary_images_every_steps=0,
                                checkpoint_every_steps=1000, **train))


def test_fail_names_shard_and_record_after_a_checkpoint(fake_config,
                                                        fake_videos_dir,
                                                        tmp_path):
  data_dir, shard, records = _damaged_copy(fake_videos_dir, tmp_path,
                                           record=9, how="truncate")
  workdir = str(tmp_path / "run")
  config = _config(fake_config, data_dir, num_steps=30)
  with pytest.raises(bad_records.BadRecordError,
                     match=rf"{shard}: record 9 cannot be read \(truncated"):
    train.train_and_evaluate(config, workdir)
  # The steps done before the damaged record were checkpointed first.
  step = workdir_lib.latest_step(workdir)
  assert step is not None and 3 <= step < 30


def test_skip_leaves_out_the_records_counts_and_lists_them(fake_config,
                                                           fake_videos_dir,
                                                           tmp_path):
  data_dir, shard, records = _damaged_copy(fake_videos_dir, tmp_path,
                                           record=6, how="flip")
  workdir = str(tmp_path / "run")
  config = _config(fake_config, data_dir, num_steps=8)
  config = dataclasses.replace(config, data=dataclasses.replace(
      config.data, on_bad_record="skip"))
  result = train.train_and_evaluate(config, workdir)
  assert result["step"] == 8
  # Records 6..9 cannot be read (the reader stops the shard at record 6).
  assert result["skipped_records"] == records - 6
  with open(os.path.join(workdir, bad_records.SKIPPED_FILENAME)) as f:
    rows = [line.rstrip("\n").split("\t") for line in f]
  assert rows[0][:6] == ["step", "split", "shard", "record_index",
                         "split_index", "records_skipped"]
  assert len(rows) == 2
  assert rows[1][1:6] == ["train", shard, "6", "6", str(records - 6)]
  assert "corrupted record" in rows[1][6]
  tags = set()
  for path in glob.glob(os.path.join(workdir, "train", "events.out.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      tags.update(v.tag for v in event.summary.value)
  assert "data/skipped_records" in tags


def test_evaluation_names_the_damaged_shard(fake_config, fake_videos_dir,
                                            tmp_path):
  data_dir, shard, _ = _damaged_copy(fake_videos_dir, tmp_path, record=2,
                                     how="flip")
  config = _config(fake_config, data_dir)
  model = model_lib.avc_network(config.model, config.image, config.audio)
  with pytest.raises(bad_records.BadRecordError,
                     match=rf"{shard}: record 2 cannot be read \(corrupted"):
    evaluate.evaluate_model(model, config, split="train", num_pairs=16)


def test_split_without_leaves_out_each_range():
  bad = [bad_records.BadRecord("b", 1, 11, 4, "x"),
         bad_records.BadRecord("a", 2, 2, 3, "y")]
  assert (bad_records.split_without("train", bad)
          == "train[0:2]+train[5:11]+train[15:]")
  with pytest.raises(ValueError, match="data.on_bad_record='drop'"):
    bad_records.check_on_bad_record("drop")


def _copy_with_a_bad_frame(fake_videos_dir, tmp_path, record: int):
  """The fake videos with the frames of one train record replaced by bytes
  that are not a JPEG (the record itself stays valid), from frame 0."""
  data_dir = str(tmp_path / "data")
  shutil.copytree(fake_videos_dir, data_dir)
  shard = _train_shard(data_dir)
  raws = [r.numpy() for r in tf.data.TFRecordDataset(shard)]
  example = tf.train.Example.FromString(raws[record])
  frames = example.features.feature["frames"].bytes_list.value
  for index in range(len(frames)):  # whichever frame a pair draws
    frames[index] = frames[index][:2] + b"not a jpeg at all" * 4
  video_id = example.features.feature["video_id"].bytes_list.value[0].decode()
  raws[record] = example.SerializeToString()
  with tf.io.TFRecordWriter(shard) as writer:
    for raw in raws:
      writer.write(raw)
  return data_dir, shard, video_id


def test_a_frame_that_does_not_decode_is_named_or_skipped(
    fake_config, fake_videos_dir, tmp_path):
  data_dir, shard, video_id = _copy_with_a_bad_frame(fake_videos_dir,
                                                     tmp_path, record=3)
  config = _config(fake_config, data_dir)
  model = model_lib.avc_network(config.model, config.image, config.audio)
  expected = rf"{shard}: record 3 cannot be read \(video '{video_id}' frame 0"
  if video_id in ("fake_t8", "fake_t9"):  # never read: it forms no pair
    pytest.skip(f"record 3 is {video_id}, which forms no pair")
  with pytest.raises(bad_records.BadRecordError, match=expected):
    evaluate.evaluate_model(model, config, split="train", num_pairs=96)
  (bad,) = bad_records.undecodable_frames(
      input_pipeline.load_builder(config.data.dataset, data_dir), "train")
  assert (bad.shard, bad.record_index, bad.records_skipped) == (shard, 3, 1)
  assert (bad_records.split_without("train", [bad])
          == "train[0:3]+train[4:]")
