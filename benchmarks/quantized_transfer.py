r"""ESC-10 linear-SVM accuracy with features from quantised LiteRT towers.

  PYTHONPATH=. python benchmarks/quantized_transfer.py \
      --manual_dir=../shared/data/esc10 [--weights=random|WORKDIR] \
      [--data_dir=~/.cache/l3_tf/tfds] [--calibration_clips=64]

The transfer protocol of `experiments.audio_transfer` (hop 0.5 s, official
folds, the same SVM settings), with the `embedding_6144` features computed
by each LiteRT file of the audio tower (waveform in): float32, dynamic_int8
and int8. int8 is calibrated on the 1-second windows of the first
--calibration_clips clips of fold 1: calibration sets activation ranges
only (no labels), but fold 1 is the test fold of one round, so that round
is not strictly held out from it; said in the output. Prints accuracy per
quantisation, its change from float32, and the cosine of each quantised
feature row to the float32 one. Random weights of
the demo config (1/8 width) unless --weights names a workdir.
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import os
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

from experiments import configs
from l3_tf.evaluation import audio_transfer
from l3_tf.evaluation import records
from l3_tf.evaluation import transfer
from l3_tf.evaluation import transfer_features
from l3_tf.serving import export_check
from l3_tf.serving import export_formats
from l3_tf.training import workdir as workdir_lib

_MANUAL_DIR = flags.DEFINE_string("manual_dir", "../shared/data/esc10",
                                  "ESC-10 in its official layout")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", os.path.expanduser("~/.cache/l3_tf/tfds"), "TFDS data dir")
_WEIGHTS = flags.DEFINE_string("weights", "random", "'random' or a workdir")
_CALIBRATION_CLIPS = flags.DEFINE_integer(
    "calibration_clips", 32, "fold-1 clips whose windows calibrate int8")
_MAX_CLIPS = flags.DEFINE_integer("max_clips_per_split", None, "a subset")


class _RunnerEmbedder:
  """The `embed_windows` of `embed.Embedder`, by a LiteRT file."""

  def __init__(self, path, audio_params):
    self.audio_params = audio_params
    self._run = export_check.load_runner(
        path, {"format": "litert", "signature": "audio_embedding"})

  def embed_windows(self, windows, embedding, batch_size):
    return np.concatenate([
        self._run({"waveform": windows[i:i + batch_size]})[embedding]
        for i in range(0, len(windows), batch_size)])


def main(argv):
  del argv
  env = records.environment()
  print(f"{env['hardware']}, load at start {os.getloadavg()}")
  config, avc, description = workdir_lib.load_network(
      _WEIGHTS.value, configs.get_config("demo"))
  builder = audio_transfer.prepare_dataset("esc10", _DATA_DIR.value,
                                           _MANUAL_DIR.value)
  spec = audio_transfer.DATASETS["esc10"]
  calibration = []
  for clip in transfer_features.read_clips(builder, "fold1",
                                        _CALIBRATION_CLIPS.value):
    window = config.audio.clip_samples
    for start in range(0, clip["waveform"].size - window + 1, window):
      calibration.append(clip["waveform"][None, start:start + window])
  results, features = {}, {}
  with tempfile.TemporaryDirectory() as out:
    export_formats.convert(
        avc, config, out, "litert", source={"workdir": description},
        quantizations=export_formats.QUANTIZATIONS,
        calibration={"waveform": calibration}, models=("audio",))
    for q in export_formats.QUANTIZATIONS:
      path = os.path.join(out, f"audio_tower_waveform_{q}.tflite")
      weights = transfer_features.Weights(
          _RunnerEmbedder(path, config.audio), config,
          f"{description} as LiteRT {q}", {"compute_dtype": q}, None)
      started = time.perf_counter()
      data, _ = audio_transfer.dataset_features(
          weights, builder, spec, 0.5, max_clips_per_split=_MAX_CLIPS.value)
      features[q] = data.features
      results[q] = transfer.cross_validate(data)
      print(f"{q}: {os.path.getsize(path) / 1e6:.2f} MB, accuracy "
            f"{results[q]['mean_accuracy']:.4f} +- {results[q]['std']:.4f} "
            f"({time.perf_counter() - started:.0f} s, load "
            f"{os.getloadavg()[0]:.1f})", flush=True)
  base = results["float32"]["mean_accuracy"]
  for q in export_formats.QUANTIZATIONS[1:]:
    cosines = export_check._row_cosines(features["float32"], features[q])  # pylint: disable=protected-access
    print(f"{q}: accuracy change {results[q]['mean_accuracy'] - base:+.4f}; "
          f"feature cosine to float32: mean {cosines.mean():.5f}, min "
          f"{cosines.min():.5f} over {len(cosines)} sub-clips")
  print(f"weights: {description}; int8 calibrated on "
        f"{len(calibration)} windows of {_CALIBRATION_CLIPS.value} fold-1 "
        "clips (no labels used; fold 1 is round 1's test fold)")


if __name__ == "__main__":
  app.run(main)
