"""Video build speed on the real av_clips: seconds of video per second per core.

Three measurements over the 19 usable clips of ../shared/data/av_clips (bento
is skipped as too short; its 1.1 s are not counted):

  decode   the per-video work of every video builder (`VideoDecoder`: PyAV
           demux + decode, 4 fps frame selection, resize to short side 256,
           JPEG, 48 kHz mono audio, int16, policy checks), one thread;
  exact    the same without `DecodeOptions.skip_unneeded_frames` (every
           frame decoded): what dropping unneeded frames saves;
  serialize  the same plus TFDS example serialization (what a Beam worker
           does per video);
  build    `video_folder` end to end (`download_and_prepare`: listing,
           decoding, serialization, shuffling, TFRecord writing), with
           --num_workers decoding threads.

"Seconds of video" are the seconds kept in the dataset (the first 10 s of
each clip by default; --max_seconds=0 keeps whole clips). Per core divides by
the number of cores the measurement keeps busy: 1 for decode and serialize,
and the measured CPU time / wall time for the build. Both wall-clock and CPU
figures are printed: on a shared machine, wall clock includes waiting for a
core. Target: >= 20x real time per core.

  python benchmarks/build_videos.py [--repeats=3] [--max_seconds=10]
      [--num_workers=1] [--clips_dir=../shared/data/av_clips]
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import dataclasses
import json
import os
import sys
import pathlib
import tempfile
import time

from absl import app
from absl import flags

import tensorflow_datasets as tfds

from data_prep import media_builder
from data_prep import video_builder
from data_prep.video_folder import video_folder_dataset_builder
from l3_tf.data import video_example

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from tests import testing  # pylint: disable=g-import-not-at-top,wrong-import-position


_CLIPS = flags.DEFINE_string("clips_dir", None,
                             "av_clips folder (default: ../shared/data)")
_REPEATS = flags.DEFINE_integer("repeats", 3, "timed passes (best kept)")
_MAX_SECONDS = flags.DEFINE_float("max_seconds", 10.0,
                                  "seconds kept per clip; 0 keeps all")
_WORKERS = flags.DEFINE_integer("num_workers", 1,
                                "decoding threads of the end-to-end build")

TARGET = 20.0


def _timed(fn):
  wall, cpu = time.perf_counter(), time.process_time()
  result = fn()
  return result, time.perf_counter() - wall, time.process_time() - cpu


def _report(name, seconds, wall, cpu, cores):
  line = {
      "stage": name,
      "video_seconds": round(seconds, 2),
      "wall_seconds": round(wall, 3),
      "cpu_seconds": round(cpu, 3),
      "cores_busy": round(cores, 2),
      "x_real_time_per_core_wall": round(seconds / wall / cores, 1),
      "x_real_time_per_core_cpu": round(seconds / cpu, 1),
  }
  print(f"{name:>10}: {seconds:7.1f} s of video in {wall:6.2f} s wall "
        f"({cpu:6.2f} s CPU, {cores:.2f} cores) -> "
        f"{line['x_real_time_per_core_wall']:5.1f}x real time per core "
        f"(wall), {line['x_real_time_per_core_cpu']:5.1f}x (CPU); "
        f"target {TARGET:g}x")
  return line


def main(argv):
  del argv
  root = pathlib.Path(_CLIPS.value) if _CLIPS.value else (
      testing.SHARED_DATA / "av_clips")
  if not root.is_dir():
    raise SystemExit(f"{root} is absent: pass --clips_dir")
  max_seconds = _MAX_SECONDS.value or None
  config = video_builder.VideoConfig(name="bench", max_seconds=max_seconds)
  items, _ = video_builder.folder_items(root, (1.0, 0.0, 0.0),
                                        labelled=False)
  items = items["train"]
  decoder = video_builder.VideoDecoder(config.decode_options(),
                                       config.policy())
  exact_decoder = video_builder.VideoDecoder(
      dataclasses.replace(config.decode_options(),
                          skip_unneeded_frames=False), config.policy())
  features = video_example.video_features()

  def decode_all(serialize, decoder=decoder):
    seconds = 0.0
    for item in items:
      example, _ = media_builder.decode_or_reason(decoder, item)
      if example is None:
        continue
      if serialize:
        features.serialize_example(example)
      seconds += float(example["duration_seconds"])
    return seconds

  decode_all(False)  # warm-up: imports, codec tables, file cache
  lines = []
  for name, serialize, used in (("decode", False, decoder),
                                ("exact", False, exact_decoder),
                                ("serialize", True, decoder)):
    runs = [_timed(lambda s=serialize, d=used: decode_all(s, d))
            for _ in range(_REPEATS.value)]
    seconds, wall, cpu = min(runs, key=lambda r: r[1])
    lines.append(_report(name, seconds, wall, cpu, 1.0))

  runs = []
  for _ in range(_REPEATS.value):
    with tempfile.TemporaryDirectory() as data_dir:
      builder = video_folder_dataset_builder.Builder(
          data_dir=data_dir, config=config, num_workers=_WORKERS.value)
      _, wall, cpu = _timed(lambda b=builder: b.download_and_prepare(
          download_config=tfds.download.DownloadConfig(manual_dir=str(root))))
      seconds = 0.0
      for split in builder.info.splits:
        ds = builder.as_dataset(split=split,
                                decoders=video_example.SKIP_FRAME_DECODING)
        seconds += sum(float(ex["duration_seconds"])
                       for ex in tfds.as_numpy(ds))
      runs.append((seconds, wall, cpu))
  seconds, wall, cpu = min(runs, key=lambda r: r[1])
  cores = max(1.0, min(float(_WORKERS.value), cpu / wall))
  lines.append(_report("build", seconds, wall, cpu, cores))
  print("BUILD_VIDEOS_RESULT " + json.dumps({
      "clips_dir": os.fspath(root), "max_seconds": max_seconds,
      "num_workers": _WORKERS.value, "stages": lines}))


if __name__ == "__main__":
  app.run(main)
