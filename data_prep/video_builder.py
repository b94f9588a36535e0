"""What every video dataset builder shares: config, splits, skips, Beam.

A video builder lists its videos as `VideoItem`s per split and hands them to
`VideoBuilder._generate_examples`, which decodes each with the policy of
`data_prep.video_decoding` and writes the stored form of
`l3_tf.video_example`. Files that fail are never fatal and never lost: each
becomes a row (file, split, reason) of `skipped_files.tsv`, written next to
the prepared dataset (`<data_dir>/<name>/<config>/<version>/`), and the count
is logged.

Three ways to run the same decode:
  * in process (default);
  * a local thread pool: `Builder(..., num_workers=N)`;
  * Apache Beam, when the download config names a runner or pipeline options
    (`tfds build ... --beam_pipeline_options=...`, or
    `DownloadConfig(beam_runner=..., beam_options=...)`): a Dataflow, Spark or
    Flink runner then decodes 500k videos on many machines.
"""

import concurrent.futures
import csv
import dataclasses
import hashlib
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

from absl import logging
from etils import epath
import tensorflow_datasets as tfds

from data_prep import video_decoding
from l3_tf import media
from l3_tf import video_example

SKIP_REPORT = "skipped_files.tsv"
_SKIP_SHARD_PREFIX = "skipped_files-"
SKIP_REPORT_COLUMNS = ("path", "split", "reason")
SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(eq=False)
class VideoConfig(tfds.core.BuilderConfig):
  """Options of a video builder (all of them change the stored examples).

  Attributes:
    frames_per_second: frame sampling rate (see
      `l3_tf.video_example.DEFAULT_FRAMES_PER_SECOND`).
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
    # `tfds build --config='{json}'` passes lists.
    self.split_fractions = tuple(float(f) for f in self.split_fractions)
    if (len(self.split_fractions) != 3 or min(self.split_fractions) < 0 or
        abs(sum(self.split_fractions) - 1.0) > 1e-6):
      raise ValueError(f"split_fractions={self.split_fractions}: expected "
                       "three non-negative fractions summing to 1")
    self.decode_options()  # validates the decoding options early

  def decode_options(self) -> media.DecodeOptions:
    return media.DecodeOptions(frames_per_second=self.frames_per_second,
                               max_seconds=self.max_seconds,
                               short_side=video_example.SHORT_SIDE,
                               jpeg_quality=self.jpeg_quality,
                               sample_rate_hz=video_example.SAMPLE_RATE_HZ)

  def policy(self) -> video_decoding.Policy:
    return video_decoding.Policy(
        min_seconds=self.min_seconds, skip_silent=self.skip_silent,
        silence_threshold_dbfs=self.silence_threshold_dbfs)


class VideoItem(NamedTuple):
  """One file to decode.

  Attributes:
    video_id: stable id, also the example key.
    path: the file (absolute, any epath-readable local path).
    source_path: the path stored in the example and the skip report
      (relative to the manual dir).
    label: class name or index, -1 for "no label", None for unlabelled
      datasets.
  """

  video_id: str
  path: str
  source_path: str
  label: int | str | None = None


class Skip(NamedTuple):
  path: str
  split: str
  reason: str


def hash_fraction(video_id: str) -> float:
  """A stable, uniform number in [0, 1) from the id (sha256, not hash())."""
  digest = hashlib.sha256(video_id.encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big") / 2.0**64


def split_by_hash(video_id: str, fractions: Sequence[float],
                  names: Sequence[str] = SPLITS) -> str:
  """The split of a video: stable across runs, machines and file orders."""
  position = hash_fraction(video_id)
  cumulative = 0.0
  for name, fraction in zip(names, fractions):
    cumulative += fraction
    if position < cumulative:
      return name
  return names[-1]


def list_files(root: epath.Path) -> list[epath.Path]:
  """All regular files under root (recursively), sorted, hidden ones too."""
  return sorted(p for p in root.rglob("*") if p.is_file())


def relative(path: epath.Path, root: epath.Path) -> str:
  return path.relative_to(root).as_posix()


def _clean(text: str) -> str:
  return " ".join(str(text).split())


def format_skip_report(skips: Iterable[Skip]) -> str:
  buffer = io.StringIO()
  writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
  writer.writerow(SKIP_REPORT_COLUMNS)
  for skip in sorted(skips):
    writer.writerow([_clean(skip.path), skip.split, _clean(skip.reason)])
  return buffer.getvalue()


def read_skip_report(path: epath.PathLike) -> list[Skip]:
  """Rows of a skip report (or of a dataset dir's `skipped_files.tsv`)."""
  path = epath.Path(path)
  if path.is_dir():
    path = path / SKIP_REPORT
  rows = list(csv.reader(io.StringIO(path.read_text()), delimiter="\t"))
  if not rows or tuple(rows[0]) != SKIP_REPORT_COLUMNS:
    raise ValueError(f"{path}: not a skip report (expected the header "
                     f"{SKIP_REPORT_COLUMNS})")
  return [Skip(*row) for row in rows[1:]]


def decode_or_reason(path: str, options: media.DecodeOptions,
                     policy: video_decoding.Policy):
  """(DecodedVideo, None) or (None, reason): never raises on a bad file."""
  try:
    return video_decoding.decode_for_dataset(path, options, policy), None
  except media.MediaError as e:
    return None, e.reason
  except Exception as e:  # pylint: disable=broad-except
    # A decoder bug on one file must not end a 500k-video build; the reason
    # names the exception so that it can be reported upstream.
    return None, f"unexpected error: {type(e).__name__}: {e}"


class _DecodeDoFn:
  """Beam DoFn body (wrapped lazily so that Beam stays an optional extra)."""

  def __init__(self, options, policy, split):
    self.options = options
    self.policy = policy
    self.split = split

  def __call__(self, item: VideoItem):
    beam = tfds.core.lazy_imports.apache_beam
    decoded, reason = decode_or_reason(item.path, self.options, self.policy)
    if decoded is None:
      yield beam.pvalue.TaggedOutput(
          "skipped", Skip(item.source_path, self.split, reason))
      return
    yield item.video_id, video_example.make_example(
        decoded, item.video_id, item.source_path, item.label)


def _write_skip_shard(skips: list[Skip], path: str) -> None:
  epath.Path(path).write_text(format_skip_report(skips))


class VideoBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base of the video builders: decoding, skip report, Beam, process pool.

  Subclasses define `_info` (with `video_example.video_features`) and
  `_split_generators`, which returns
  `{split: self._generate_examples(items, split)}` and may call
  `record_skip` for files that never reach the decoder.
  """

  BUILDER_CONFIGS = [VideoConfig(name="default")]

  def __init__(self, *, num_workers: int = 1, **kwargs):
    """See `tfds.core.GeneratorBasedBuilder`.

    Args:
      num_workers: decode this many videos in parallel in local threads
        (ignored when Beam runs the build).
      **kwargs: data_dir, config, version, ... as for any TFDS builder.
    """
    super().__init__(**kwargs)
    if num_workers < 1:
      raise ValueError(f"num_workers={num_workers}: expected >= 1")
    self._num_workers = num_workers
    self._skipped: list[Skip] = []
    self._use_beam = False

  def _download_and_prepare(self, dl_manager, download_config):
    self._use_beam = (download_config.beam_runner is not None or
                      download_config.beam_options is not None)
    self._skipped = []
    super()._download_and_prepare(dl_manager=dl_manager,
                                  download_config=download_config)
    self._write_skip_report()

  def record_skip(self, source_path: str, split: str, reason: str) -> None:
    """Records a file that is not built (it goes to the skip report)."""
    self._skipped.append(Skip(source_path, split, reason))

  def _write_skip_report(self) -> None:
    skips = list(self._skipped)
    data_path = epath.Path(self.data_dir)
    for shard in sorted(data_path.glob(_SKIP_SHARD_PREFIX + "*.tsv")):
      skips.extend(read_skip_report(shard))
      shard.unlink()
    report = data_path / SKIP_REPORT
    report.write_text(format_skip_report(skips))
    if skips:
      logging.warning("%s: %d file(s) skipped, reasons in %s", self.name,
                      len(skips), report)
    else:
      logging.info("%s: no file skipped (%s)", self.name, report)

  def _generate_examples(self, items: Sequence[VideoItem], split: str):
    items = list(items)
    if self._use_beam:
      return self._beam_examples(items, split)
    return self._local_examples(items, split)

  def _decoded(self, items: list[VideoItem]) -> Iterator[tuple]:
    options = self.builder_config.decode_options()
    policy = self.builder_config.policy()
    if self._num_workers == 1 or len(items) < 2:
      for item in items:
        yield item, decode_or_reason(item.path, options, policy)
      return
    # Threads suffice: PyAV releases the GIL while it demuxes, decodes and
    # scales, which is most of the work.
    with concurrent.futures.ThreadPoolExecutor(self._num_workers) as pool:
      results = pool.map(decode_or_reason, [item.path for item in items],
                         [options] * len(items), [policy] * len(items))
      yield from zip(items, results)

  def _local_examples(self, items: list[VideoItem], split: str):
    for item, (decoded, reason) in self._decoded(items):
      if decoded is None:
        logging.info("skipping %s: %s", item.source_path, reason)
        self.record_skip(item.source_path, split, reason)
        continue
      yield item.video_id, video_example.make_example(
          decoded, item.video_id, item.source_path, item.label)

  def _beam_examples(self, items: list[VideoItem], split: str):
    beam = tfds.core.lazy_imports.apache_beam
    decode = _DecodeDoFn(self.builder_config.decode_options(),
                         self.builder_config.policy(), split)
    shard = str(epath.Path(self.data_dir) / f"{_SKIP_SHARD_PREFIX}{split}.tsv")

    class _Generate(beam.PTransform):

      def expand(self, root):
        results = (root
                   | "Create" >> beam.Create(items)
                   | "Spread" >> beam.Reshuffle()
                   | "Decode" >> beam.FlatMap(decode).with_outputs(
                       "skipped", main="examples"))
        _ = (results.skipped
             | "CollectSkips" >> beam.combiners.ToList()
             | "WriteSkips" >> beam.Map(_write_skip_shard, shard))
        return results.examples

    return _Generate()


def missing_paths_error(name: str, manual_dir: epath.PathLike,
                        missing: Sequence[str], instructions: str):
  """The error raised when expected manual files are absent."""
  listing = "\n".join(f"  {epath.Path(manual_dir) / m}" for m in missing)
  return FileNotFoundError(
      f"{name}: expected these paths in the manual dir {manual_dir}, "
      f"missing:\n{listing}\n{instructions}")
