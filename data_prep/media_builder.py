"""What every builder of this project shares: items, skips, splits, Beam.

A builder lists its files as `MediaItem`s per split and returns
`self._media_splits({split: items})` from `_split_generators`. Each item is
turned into an example by the builder's decoder (`_decoder()`: a picklable
callable, item -> feature dict, raising `l3_tf.data.media.MediaError` for a file
it cannot use). Files that fail are never fatal and never lost: each
becomes a row (path, split, reason) of `skipped_files.tsv`, written next to
the prepared dataset (`<data_dir>/<name>/<config>/<version>/`), and their
count is logged.

Three ways to run the same decoder:
  * in process (default);
  * a local thread pool: `Builder(..., num_workers=N)` (PyAV releases the
    GIL while it demuxes, decodes and scales, which is most of the work);
  * Apache Beam, when the download config names a runner or pipeline options
    (`tfds build ... --beam_pipeline_options=...`, or
    `DownloadConfig(beam_runner=..., beam_options=...)`): a Dataflow, Spark or
    Flink runner then decodes 500k videos on many machines.
"""

import concurrent.futures
import csv
import hashlib
import io
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from absl import logging
from etils import epath
import tensorflow as tf
import tensorflow_datasets as tfds

from data_prep import generated
from l3_tf.data import media
from l3_tf.platform import filesystems

SKIP_REPORT = "skipped_files.tsv"
_SKIP_SHARD_PREFIX = "skipped_files-"
SKIP_REPORT_COLUMNS = ("path", "split", "reason")
SPLITS = ("train", "validation", "test")


class MediaItem(NamedTuple):
  """One file to decode.

  Attributes:
    key: stable id, also the example key (a video_id or clip_id).
    path: the file (any path tf.io.gfile / PyAV can read).
    source_path: the path stored in the example and the skip report
      (relative to the manual dir).
    label: class name or index, -1 for "no label", None for unlabelled
      datasets.
    extra: more features of the example (e.g. {"fold": 3}).
  """

  key: str
  path: str
  source_path: str
  label: int | str | None = None
  extra: dict[str, Any] | None = None


class Skip(NamedTuple):
  path: str
  split: str
  reason: str


Decoder = Callable[[MediaItem], dict]


def hash_fraction(key: str) -> float:
  """A stable, uniform number in [0, 1) from the id (sha256, not hash())."""
  digest = hashlib.sha256(key.encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big") / 2.0**64


def split_by_hash(key: str, fractions: Sequence[float],
                  names: Sequence[str] = SPLITS) -> str:
  """The split of a file: stable across runs, machines and file orders."""
  position = hash_fraction(key)
  cumulative = 0.0
  for name, fraction in zip(names, fractions):
    cumulative += fraction
    if position < cumulative:
      return name
  return names[-1]


def check_split_fractions(fractions: Sequence[float]) -> tuple[float, ...]:
  """Three non-negative fractions summing to 1 (lists accepted: CLI JSON)."""
  fractions = tuple(float(f) for f in fractions)
  if (len(fractions) != 3 or min(fractions) < 0 or
      abs(sum(fractions) - 1.0) > 1e-6):
    raise ValueError(f"split_fractions={fractions}: expected three "
                     "non-negative fractions (train, validation, test) "
                     "summing to 1")
  return fractions


def list_files(root: epath.PathLike) -> list[epath.Path]:
  """All files under root (recursively), sorted, hidden ones too.

  tf.io.gfile.walk: works on local disks and on GCS / S3 alike.
  """
  files = []
  for directory, _, names in tf.io.gfile.walk(os.fspath(root)):
    files.extend(epath.Path(directory) / name for name in names)
  return sorted(files)


def relative(path: epath.Path, root: epath.PathLike) -> str:
  return path.relative_to(epath.Path(root)).as_posix()


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


def decode_or_reason(decoder: Decoder, item: MediaItem):
  """(example, None) or (None, reason): never raises on a bad file."""
  try:
    return decoder(item), None
  except media.MediaError as e:
    return None, e.reason
  except Exception as e:  # pylint: disable=broad-except
    # A decoder bug on one file must not end a 500k-video build; the reason
    # names the exception so that it can be reported upstream.
    return None, f"unexpected error: {type(e).__name__}: {e}"


class _BeamDecode:
  """Beam FlatMap body: (key, example) or a tagged Skip."""

  def __init__(self, decoder: Decoder, split: str):
    self.decoder = decoder
    self.split = split

  def __call__(self, item: MediaItem):
    beam = tfds.core.lazy_imports.apache_beam
    example, reason = decode_or_reason(self.decoder, item)
    if example is None:
      yield beam.pvalue.TaggedOutput(
          "skipped", Skip(item.source_path, self.split, reason))
      return
    yield item.key, example


def _write_skip_shard(skips: list[Skip], path: str) -> None:
  epath.Path(path).write_text(format_skip_report(skips))


def missing_paths_error(name: str, manual_dir: epath.PathLike,
                        missing: Sequence[str], instructions: str):
  """The error raised when expected manual files are absent."""
  listing = "\n".join(f"  {epath.Path(manual_dir) / m}" for m in missing)
  return FileNotFoundError(
      f"{name}: expected these paths in the manual dir {manual_dir}, "
      f"missing:\n{listing}\n{instructions}")


class MediaBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base of the builders: decoding, skip report, Beam, thread pool.

  Subclasses define `_info`, `_decoder()` and `_split_generators`, which
  returns `self._media_splits({split: items})` and may call `record_skip`
  for files that never reach the decoder.

  Every build from a manual dir records in `info.metadata["generated"]`
  whether that dir is a generated release (`generated.MARKER`, written by
  `data_prep.dummy_media`), so that no result on it passes for the real
  dataset's.

  VERSION and RELEASE_NOTES are those of every builder: the stored forms
  (`l3_tf.data.video_example`, `l3_tf.data.audio_example`) are shared, so a change to
  them is a new version of each dataset. A builder whose own examples
  change overrides both.
  """

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {
      "1.0.0": "First release: mono 48 kHz int16 audio (video datasets: "
               "4 fps JPEG frames with exact times).",
      "1.1.0": "audio stored as raw int16 bytes (3x smaller, 10x faster "
               "to parse).",
  }

  def __init__(self, *, num_workers: int = 1, **kwargs):
    """See `tfds.core.GeneratorBasedBuilder`.

    Args:
      num_workers: decode this many files in parallel in local threads
        (ignored when Beam runs the build).
      **kwargs: data_dir, config, version, ... as for any TFDS builder.
    """
    filesystems.prepare(kwargs.get("data_dir"), "data_dir")
    super().__init__(**kwargs)
    if num_workers < 1:
      raise ValueError(f"num_workers={num_workers}: expected >= 1")
    self._num_workers = num_workers
    self._skipped: list[Skip] = []
    self._use_beam = False

  def _decoder(self) -> Decoder:
    raise NotImplementedError

  def dataset_info_from_configs(self, **kwargs):
    # Every builder's info holds metadata: at least "generated".
    kwargs.setdefault("metadata", tfds.core.MetadataDict())
    return super().dataset_info_from_configs(**kwargs)

  def _download_and_prepare(self, dl_manager, download_config):
    filesystems.prepare(download_config.manual_dir, "manual_dir")
    self._use_beam = (download_config.beam_runner is not None or
                      download_config.beam_options is not None)
    self._skipped = []
    if self.MANUAL_DOWNLOAD_INSTRUCTIONS:  # (a builder that generates: none)
      marker = generated.find_marker(dl_manager.manual_dir)
      self.info.metadata["generated"] = marker is not None
      if marker is not None:
        logging.warning("%s: %s holds %s: generated data, not the real "
                        "dataset; recorded as such", self.name,
                        marker.parent, generated.MARKER)
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
    # TFDS prepares in `incomplete.<random>_<version>/`, renamed to
    # `<version>/` once complete: name the final place.
    final = data_path.parent / str(self.version) / SKIP_REPORT
    if skips:
      logging.warning("%s: %d file(s) skipped, reasons in %s", self.name,
                      len(skips), final)
    else:
      logging.info("%s: no file skipped (%s)", self.name, final)

  def _generate_examples(self, **kwargs):
    """Not used: `_media_splits` makes each split's examples.

    (TFDS declares it abstract.) It would bypass the handling of splits none
    of whose files can be used, so it is not a second way in.
    """
    raise NotImplementedError(
        f"{self.name}: return self._media_splits({{split: items}}) from "
        "_split_generators")

  def _media_splits(self, items_by_split: dict[str, Sequence[MediaItem]]):
    """`_split_generators`'s result for these items.

    TFDS refuses to write a split without examples, so a split none of whose
    files can be used is left out (its files are in the skip report) rather
    than ending the build. Locally this is known before TFDS starts writing:
    each split's files are decoded in order up to the first usable one,
    which becomes the split's first example (nothing is decoded twice). A
    Beam build cannot look ahead; there only splits without files are left
    out.

    Raises:
      ValueError: no file of any split can be used.
    """
    splits = {}
    for split, items in items_by_split.items():
      items = list(items)
      if not items:
        logging.warning("%s: split %r has no files; left out", self.name,
                        split)
        continue
      if self._use_beam:
        splits[split] = self._beam_examples(items, split)
        continue
      first = self._first_usable(items, split)
      if first is None:
        logging.warning("%s: none of the %d files of split %r can be used; "
                        "the split is left out", self.name, len(items), split)
        continue
      index, example = first
      splits[split] = self._local_examples(items[index + 1:], split,
                                           first=(items[index], example))
    if not splits:
      raise ValueError(
          f"{self.name}: no usable file among "
          f"{sum(len(v) for v in items_by_split.values())}; reasons: "
          f"{sorted({skip.reason for skip in self._skipped})[:5]}")
    return splits

  def _first_usable(self, items: list[MediaItem], split: str):
    decoder = self._decoder()
    for index, item in enumerate(items):
      example, reason = decode_or_reason(decoder, item)
      if example is not None:
        return index, example
      self.record_skip(item.source_path, split, reason)
    return None

  def _decoded(self, items: list[MediaItem]) -> Iterator[tuple]:
    decoder = self._decoder()
    if self._num_workers == 1 or len(items) < 2:
      for item in items:
        yield item, decode_or_reason(decoder, item)
      return
    with concurrent.futures.ThreadPoolExecutor(self._num_workers) as pool:
      yield from zip(items, pool.map(decode_or_reason,
                                     [decoder] * len(items), items))

  def _local_examples(self, items: list[MediaItem], split: str, first=None):
    if first is not None:
      item, example = first
      yield item.key, example
    for item, (example, reason) in self._decoded(items):
      if example is None:
        logging.info("skipping %s: %s", item.source_path, reason)
        self.record_skip(item.source_path, split, reason)
        continue
      yield item.key, example

  def _beam_examples(self, items: list[MediaItem], split: str):
    beam = tfds.core.lazy_imports.apache_beam
    decode = _BeamDecode(self._decoder(), split)
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


def is_audio_path(path: epath.PathLike) -> bool:
  return epath.Path(path).suffix.lower() in media.AUDIO_EXTENSIONS


def fold_splits(num_folds: int = 5) -> dict[str, list[MediaItem]]:
  """Empty {"fold1": [], ...}: the splits of a k-fold benchmark."""
  return {f"fold{k}": [] for k in range(1, num_folds + 1)}
