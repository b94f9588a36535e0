"""Cuts a labelled ESC-10 release into the UrbanSound8K layout.

  python -m data_prep.urbansound8k.recut ../shared/data/esc10 /tmp/us8k_esc10

For running the UrbanSound8K builder and protocol on real recordings where
the release itself is not at hand (the files written are derived data:
keep them out of the project, like their source). What UrbanSound8K did to
freesound recordings, done to ESC-10's clips:

  * the occurrence: the clip without its leading and trailing silence
    (ESC clips are padded with silence to 5 s; below -60 dBFS counts as
    silence), from `start` to `end` in the clip;
  * slices of 4 s of the occurrence, the last one shorter (some under the
    1-second window: the protocol's padding is exercised on real sound);
  * fsID = the freesound id in the ESC file name (`{fold}-{fsID}-{take}`),
    occurrence = the take (A = 0, B = 1, ...), classID = the class folder's
    number - 1, class = its name, salience 1;
  * fold: ESC fold f becomes UrbanSound8K fold 2f - 1 or 2f by the fsID's
    parity, so the slices of one recording stay in one fold (ESC's folds
    already keep a recording in one fold);
  * written as wav in turn in the widths, rates and channel counts of
    `dummy_media.US8K_FORMATS` (8-bit to 32-bit float, 8 to 192 kHz, mono
    and stereo), as the release mixes them.
"""

import os
import re
import sys

import numpy as np

from data_prep import dummy_media
from data_prep.esc10 import esc10_dataset_builder
from l3_tf.data import media_audio

SLICE_SECONDS = 4.0
SILENCE = 10 ** (-60 / 20)
MIN_SLICE_SECONDS = 0.05
_ESC_NAME = re.compile(r"^([1-5])-(\d+)-([A-Z])\.\w+$")
COLUMNS = "slice_file_name,fsID,start,end,salience,fold,classID,class"


def occurrence(waveform: np.ndarray) -> tuple[int, int]:
  """(first, end) sample of the part between leading / trailing silence
  (the whole clip if it is all silence)."""
  loud = np.flatnonzero(np.abs(waveform) > SILENCE)
  if loud.size == 0:
    return 0, waveform.size
  return int(loud[0]), int(loud[-1]) + 1


def recut(esc10_dir: str, output_dir: str) -> dict[str, int]:
  """Writes `<output_dir>/audio/foldK/*.wav` and
  `<output_dir>/metadata/UrbanSound8K.csv`; returns slices per fold."""
  from etils import epath  # pylint: disable=g-import-not-at-top
  classes = esc10_dataset_builder.class_dirs(epath.Path(esc10_dir))
  if not classes:
    raise FileNotFoundError(f"{esc10_dir}: no ESC-10 class folders "
                            "('001 - Dog bark', ...)")
  rows, counts, index = [COLUMNS], {}, 0
  for number, name, folder in classes:
    for path in sorted(folder.iterdir()):
      match = _ESC_NAME.match(path.name)
      if not match:
        continue
      esc_fold, fsid, take = int(match[1]), int(match[2]), match[3]
      fold = 2 * esc_fold - 1 + fsid % 2
      codec, rate, channels = dummy_media.US8K_FORMATS[
          index % len(dummy_media.US8K_FORMATS)]
      index += 1
      waveform = media_audio.load_audio(str(path), rate)  # [n] mono at `rate`
      first, end = occurrence(waveform)
      step = int(SLICE_SECONDS * rate)
      for number_in, start in enumerate(range(first, end, step)):
        stop = min(start + step, end)
        if stop - start < MIN_SLICE_SECONDS * rate:
          continue
        slice_name = f"{fsid}-{number - 1}-{ord(take) - ord('A')}-{number_in}.wav"
        target = os.path.join(output_dir, "audio", f"fold{fold}", slice_name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        samples = np.repeat(waveform[None, start:stop], channels, axis=0)
        dummy_media.write_samples(target, samples, rate, codec)
        rows.append(f"{slice_name},{fsid},{start / rate:.6f},"
                    f"{stop / rate:.6f},1,{fold},{number - 1},{name}")
        counts[f"fold{fold}"] = counts.get(f"fold{fold}", 0) + 1
  os.makedirs(os.path.join(output_dir, "metadata"), exist_ok=True)
  with open(os.path.join(output_dir, "metadata", "UrbanSound8K.csv"),
            "w") as f:
    f.write("\n".join(rows) + "\n")
  return dict(sorted(counts.items(), key=lambda kv: int(kv[0][4:])))


def main(argv):
  if len(argv) != 3:
    print(__doc__)
    return 2
  counts = recut(argv[1], argv[2])
  for split, count in counts.items():
    print(f"{split:7s} {count}")
  print(f"total   {sum(counts.values())}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
