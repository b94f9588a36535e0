"""Damaged TFRecord shards met while training or evaluating (`data.on_bad_record`).

TensorFlow's record reader stops a shard at the first record whose length or
checksum is wrong (a truncated file, flipped bytes) with a `DataLossError`
that names a byte offset but not the file. `locate` finds the shard and the
record: it walks the record headers of the split's shards (cheap, no data
read) to find those with a record at that offset, then reads those with
TensorFlow to confirm. Every record from the damaged one to the end of its
shard is unreadable (the reader cannot resynchronise), so that is what
`"skip"` leaves out, and what it counts.

A JPEG frame that does not decode inside an otherwise valid record stops
the pipeline with an `InvalidArgumentError` that names nothing either;
`undecodable_frames` then decodes every frame of the split (eagerly, shard
by shard: minutes for the demo set, long at the paper's scale, but only
after a failure) and names the video, the frame, the shard and the record;
`"skip"` leaves out that one record.


  "fail" (default)  stop with `BadRecordError` naming the shard, the record
                    index and the reason (training checkpoints first).
  "skip"            append one row per damaged shard to
                    `<workdir>/skipped_records.tsv`, log the running count to
                    TensorBoard (`data/skipped_records`), and read the split
                    without those records (`split_without`).
"""

import dataclasses
import os
import re
import struct

import tensorflow as tf

from l3_tf.data import input_pipeline

ON_BAD_RECORD = ("fail", "skip")
SKIPPED_FILENAME = "skipped_records.tsv"
_TSV_HEADER = ("step", "split", "shard", "record_index", "split_index",
               "records_skipped", "reason")
_OFFSET = re.compile(r"(?:corrupted|truncated) record at (\d+)")
_HEADER_BYTES = 12  # uint64 length + uint32 masked CRC of the length
_FOOTER_BYTES = 4  # uint32 masked CRC of the data


class BadRecordError(input_pipeline.DatasetError):
  """A shard of the dataset holds a record that cannot be read."""


@dataclasses.dataclass(frozen=True)
class BadRecord:
  """A damaged record and what reading around it loses.

  Attributes:
    shard: path of the TFRecord file.
    record_index: index of the damaged record in its shard.
    split_index: index of that record in the split (shards in order).
    records_skipped: records from it to the end of its shard (all
      unreadable).
    reason: TensorFlow's message, first line.
  """

  shard: str
  record_index: int
  split_index: int
  records_skipped: int
  reason: str

  def describe(self) -> str:
    return (f"{self.shard}: record {self.record_index} cannot be read "
            f"({self.reason})")


def check_on_bad_record(value: str) -> str:
  if value not in ON_BAD_RECORD:
    raise ValueError(f"data.on_bad_record={value!r}: expected one of "
                     f"{list(ON_BAD_RECORD)}")
  return value


def record_starts(path: str) -> list[int]:
  """Byte offsets of the records of a TFRecord file, from their headers.

  Stops at the end of the file or at a header whose length runs past it.
  """
  starts = []
  size = tf.io.gfile.stat(path).length
  with tf.io.gfile.GFile(path, "rb") as f:
    offset = 0
    while offset + _HEADER_BYTES <= size:
      f.seek(offset)
      (length,) = struct.unpack("<Q", f.read(8))
      starts.append(offset)
      offset += _HEADER_BYTES + length + _FOOTER_BYTES
      if offset > size:
        break
  return starts


def _first_bad_record(path: str) -> tuple[int, str] | None:
  """(index, reason) of the first unreadable record of a shard, or None."""
  index = 0
  try:
    for _ in tf.data.TFRecordDataset(path):
      index += 1
  except tf.errors.DataLossError as e:
    return index, _reason(e)
  return None


def _reason(error: Exception) -> str:
  """TensorFlow's message without the op and function names around it."""
  text = (str(error).strip().splitlines() or [type(error).__name__])[0]
  text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
  return text.split(" [Op:")[0]


def _shards(builder, split: str) -> list[tuple[str, int, int]]:
  """(path, first split index, records) of each shard of a split."""
  info = builder.info.splits[split]
  shards, first = [], 0
  for path, length in zip(info.filepaths, info.shard_lengths):
    shards.append((os.fspath(path), first, length))
    first += length
  return shards


def locate(builder, split: str, error: Exception | None = None
           ) -> list[BadRecord]:
  """The damaged records of `split` (the one `error` met, if it says where).

  Args:
    builder: the prepared TFDS builder.
    split: a plain split name ("train").
    error: the `DataLossError` met while reading; its byte offset narrows
      the search to shards with a record there.

  Returns:
    One `BadRecord` per damaged shard found, in shard order.
  """
  match = _OFFSET.search(str(error or ""))
  offset = int(match.group(1)) if match else None
  found = []
  for path, first, length in _shards(builder, split):
    if offset is not None:
      starts = set(record_starts(path))
      # The reader reports the record's start or the start of its data.
      if offset not in starts and offset - _HEADER_BYTES not in starts:
        continue
    bad = _first_bad_record(path)
    if bad is not None:
      index, reason = bad
      found.append(BadRecord(path, index, first + index, length - index,
                             reason))
  return found


def is_bad_input(error: Exception) -> bool:
  """Whether `error` (met reading a split) is a damaged record or frame."""
  if isinstance(error, tf.errors.DataLossError):
    return True
  return (isinstance(error, tf.errors.InvalidArgumentError)
          and "jpeg" in str(error).lower())


def undecodable_frames(builder, split: str) -> list[BadRecord]:
  """Records of `split` holding a frame that does not decode as a JPEG."""
  found = []
  for path, first, _ in _shards(builder, split):
    for index, raw in enumerate(tf.data.TFRecordDataset(path)):
      features = tf.train.Example.FromString(raw.numpy()).features.feature
      video_id = features["video_id"].bytes_list.value[0].decode(
          "utf-8", "replace")
      for frame, data in enumerate(features["frames"].bytes_list.value):
        try:
          tf.io.decode_jpeg(data, channels=3)
        except tf.errors.InvalidArgumentError as e:
          found.append(BadRecord(path, index, first + index, 1,
                                 f"video {video_id!r} frame {frame}: "
                                 f"{_reason(e)}"))
          break
  return found


def locate_any(builder, split: str, error: Exception) -> list[BadRecord]:
  """`locate` for a damaged record, `undecodable_frames` for a bad frame."""
  if isinstance(error, tf.errors.DataLossError):
    return locate(builder, split, error)
  return undecodable_frames(builder, split)


def error_for(builder, split: str, error: Exception) -> BadRecordError:
  """A `BadRecordError` naming the shard and record `error` came from."""
  bad = locate_any(builder, split, error)
  if not bad:
    return BadRecordError(
        f"split {split!r} of {builder.name!r} holds a damaged record "
        f"({_reason(error)}) that could not be "
        "located in its shards")
  return BadRecordError(
      f"split {split!r} of {builder.name!r}: " + "; ".join(
          b.describe() for b in bad) + " (set data.on_bad_record=skip to "
      "train without them)")


def split_without(split: str, bad: list[BadRecord]) -> str:
  """A TFDS split string of `split` leaving out the records of `bad`."""
  pieces, start = [], 0
  for record in sorted(bad, key=lambda b: b.split_index):
    if record.split_index > start:
      pieces.append(f"{split}[{start}:{record.split_index}]")
    start = max(start, record.split_index + record.records_skipped)
  pieces.append(f"{split}[{start}:]")
  return "+".join(pieces)


class SkipLog:
  """`<workdir>/skipped_records.tsv` and the TensorBoard count (chief only)."""

  def __init__(self, workdir: str | None, writer=None):
    self.path = os.path.join(workdir, SKIPPED_FILENAME) if workdir else None
    self.writer = writer
    self.skipped: list[BadRecord] = []

  @property
  def count(self) -> int:
    return sum(b.records_skipped for b in self.skipped)

  def add(self, step: int, split: str, bad: list[BadRecord]):
    new = [b for b in bad if b not in self.skipped]
    self.skipped.extend(new)
    if self.path:
      write_header = not tf.io.gfile.exists(self.path)
      # Append: earlier runs' rows stay.
      with open(self.path, "a", encoding="utf-8") as f:
        if write_header:
          f.write("\t".join(_TSV_HEADER) + "\n")
        for b in new:
          f.write("\t".join(str(v) for v in (
              step, split, b.shard, b.record_index, b.split_index,
              b.records_skipped, b.reason.replace("\t", " "))) + "\n")
    if self.writer is not None:
      with self.writer.as_default(step=step):
        tf.summary.scalar("data/skipped_records", self.count)
        tf.summary.text("data/skipped_shards",
                        "\n".join(b.describe() for b in self.skipped))
