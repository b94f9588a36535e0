"""urbansound8k: UrbanSound8K in its official layout (10 folds).

Layout (the release's archive extracted into the manual dir, optionally
inside its top folder `UrbanSound8K/`):

  <manual_dir>/audio/fold1/<fsID>-<classID>-<occurrence>-<slice>.wav
  ...
  <manual_dir>/audio/fold10/...
  <manual_dir>/metadata/UrbanSound8K.csv   (or <manual_dir>/UrbanSound8K.csv)
      slice_file_name,fsID,start,end,salience,fold,classID,class

Label = `class`, class index = `classID`; one split per fold (`fold1` ...
`fold10`) from the `fold` column; example key = `slice_file_name`. Kept as
features: the fold, `fsID` (the freesound recording the slice was cut from:
slices of one recording must never be split between training and test),
`salience` (1 foreground, 2 background) and the slice's start / end in that
recording. The wav files come in every width and rate the release has
(8-bit unsigned to 32-bit float, mono and stereo, 8 to 192 kHz); each is
decoded by `l3_tf.media` to mono 48 kHz, and one that cannot be decoded is
skipped with its reason in `skipped_files.tsv`.

A fold whose folder is missing is left out: it is named in the log and in
the skip report (which says that results on such a build are not the
official 10-fold figure), and `builder.info.metadata` lists the folds built
and missing (`all_folds_built`: false) and, as every builder's, whether the
manual dir is a generated release (`generated`, `data_prep.generated`: the
release-sized one of `data_prep.dummy_media` has the official fold sizes,
and must not pass for UrbanSound8K). The protocol
(`l3_tf.evaluation.audio_transfer`) then runs on the folds built and says
so in its result.

  tfds build data_prep/urbansound8k --manual_dir=/path/to/UrbanSound8K \\
      --data_dir=/tmp/tfds
"""

import csv
import io

from absl import logging
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from data_prep import audio_builder
from data_prep import media_builder
from l3_tf.data import audio_example

NUM_FOLDS = 10
CSV_NAME = "UrbanSound8K.csv"
CSV_PLACES = (f"metadata/{CSV_NAME}", CSV_NAME)
COLUMNS = ("slice_file_name", "fsID", "start", "end", "salience", "fold",
           "classID", "class")
NOT_OFFICIAL = ("results on this build are not the official 10-fold "
                "UrbanSound8K figure")

_DESCRIPTION = """\
UrbanSound8K (Salamon, Jacoby and Bello 2014): 8732 labelled slices (at most
4 s) of urban sounds from 10 classes, cut from 1302 freesound recordings, in
10 official folds (slices of one recording share a fold). Decoded to mono
48 kHz int16 PCM; label, fold, fsID, salience and the slice's start / end
kept.
"""


def find_root(manual_dir: epath.Path) -> tuple[epath.Path, epath.Path] | None:
  """(root holding audio/, the metadata csv) or None."""
  for root in (manual_dir, manual_dir / "UrbanSound8K"):
    for place in CSV_PLACES:
      if (root / place).exists():
        return root, root / place
  return None


def read_meta(path: epath.Path) -> list[dict]:
  """The csv rows, typed; errors name the file, the line and the value."""
  text = path.read_text()
  reader = csv.DictReader(io.StringIO(text))
  missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
  if missing:
    raise ValueError(f"{path}: missing the columns {missing} (expected "
                     f"{list(COLUMNS)}, got {reader.fieldnames})")
  rows, seen = [], {}
  for line, row in enumerate(reader, start=2):
    try:
      typed = {"slice_file_name": row["slice_file_name"],
               "fsID": int(row["fsID"]), "start": float(row["start"]),
               "end": float(row["end"]), "salience": int(row["salience"]),
               "fold": int(row["fold"]), "classID": int(row["classID"]),
               "class": row["class"]}
    except (TypeError, ValueError) as e:
      raise ValueError(f"{path}, line {line}: {e} in {dict(row)}") from None
    if not 1 <= typed["fold"] <= NUM_FOLDS:
      raise ValueError(f"{path}, line {line}: fold={typed['fold']}, "
                       f"expected 1..{NUM_FOLDS}")
    name = typed["slice_file_name"]
    if name in seen:
      raise ValueError(f"{path}, line {line}: {name!r} is listed again "
                       f"(first on line {seen[name]})")
    seen[name] = line
    rows.append(typed)
  if not rows:
    raise ValueError(f"{path}: no rows")
  return rows


class Builder(audio_builder.AudioBuilder):
  """UrbanSound8K official layout; see the module docstring."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download UrbanSound8K (https://urbansounddataset.weebly.com/urbansound8k.html,
UrbanSound8K.tar.gz) and extract it into the manual dir, so that it holds
  <manual_dir>/metadata/UrbanSound8K.csv
  <manual_dir>/audio/fold1/101415-3-0-2.wav ... <manual_dir>/audio/fold10/...
(or the same inside <manual_dir>/UrbanSound8K/; the csv may also be at
<manual_dir>/UrbanSound8K.csv).
"""

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=_DESCRIPTION,
        features=audio_example.audio_features(with_fold=True, extra={
            "fsid": tfds.features.Scalar(dtype=np.int64),
            "salience": tfds.features.Scalar(dtype=np.int32),
            "start_seconds": tfds.features.Scalar(dtype=np.float32),
            "end_seconds": tfds.features.Scalar(dtype=np.float32),
        }),
        homepage="https://urbansounddataset.weebly.com/urbansound8k.html",
        citation="J. Salamon, C. Jacoby, J. P. Bello. A Dataset and "
                 "Taxonomy for Urban Sound Research. ACM Multimedia 2014.",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    manual_dir = epath.Path(dl_manager.manual_dir)
    found = find_root(manual_dir)
    if found is None:
      raise media_builder.missing_paths_error(
          self.name, manual_dir,
          [CSV_PLACES[0], "audio/fold1/101415-3-0-2.wav ... audio/fold10/"],
          self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    root, csv_path = found
    rows = read_meta(csv_path)
    csv_name = media_builder.relative(csv_path, root)
    self.info.features["label"].names = audio_builder.label_names(
        rows, "classID", "class", csv_name)
    on_disk = [k for k in range(1, NUM_FOLDS + 1)
               if (root / "audio" / f"fold{k}").is_dir()]
    if not on_disk:
      raise media_builder.missing_paths_error(
          self.name, root, [f"audio/fold{k}/" for k in range(1, 11)],
          self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    missing = [k for k in range(1, NUM_FOLDS + 1) if k not in on_disk]
    for k in missing:
      listed = sum(row["fold"] == k for row in rows)
      self.record_skip(f"audio/fold{k}/", f"fold{k}",
                       f"fold {k} missing from disk ({listed} clips listed "
                       f"in {csv_name} not built); {NOT_OFFICIAL}")
    if missing:
      logging.warning("%s: folds %s are missing from %s: building folds %s "
                      "only; %s", self.name, missing, root / "audio", on_disk,
                      NOT_OFFICIAL)
    splits = {f"fold{k}": [] for k in on_disk}
    listed_fold = {row["slice_file_name"]: row["fold"] for row in rows}
    for row in rows:
      if row["fold"] in missing:
        continue
      source_path = f"audio/fold{row['fold']}/{row['slice_file_name']}"
      path = root / source_path
      if not path.exists():
        self.record_skip(source_path, f"fold{row['fold']}",
                         f"listed in {csv_name} but missing")
        continue
      splits[f"fold{row['fold']}"].append(media_builder.MediaItem(
          key=row["slice_file_name"], path=str(path),
          source_path=source_path, label=row["classID"],
          extra={"fold": row["fold"], "fsid": row["fsID"],
                 "salience": row["salience"],
                 "start_seconds": row["start"],
                 "end_seconds": row["end"]}))
    for k in on_disk:
      for path in media_builder.list_files(root / "audio" / f"fold{k}"):
        source_path = media_builder.relative(path, root)
        fold = listed_fold.get(path.name)
        if fold is None:
          self.record_skip(source_path, f"fold{k}",
                           f"not listed in {csv_name}")
        elif fold != k or path.parent != root / "audio" / f"fold{k}":
          self.record_skip(source_path, f"fold{k}",
                           f"{csv_name} puts it in audio/fold{fold}/")
    built = self._media_splits(splits)
    folds_built = sorted(int(name[len("fold"):]) for name in built)
    self.info.metadata.update({
        "folds_built": folds_built,
        "folds_missing": [k for k in range(1, NUM_FOLDS + 1)
                          if k not in folds_built],
        "all_folds_built": folds_built == list(range(1, NUM_FOLDS + 1)),
    })
    return built
