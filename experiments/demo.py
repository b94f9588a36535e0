"""The main job on the embedded default (`make demo`).

Today: builds the full L3-Net, prints its parameter counts, and scores one
generated frame against one generated 1-second sound with untrained weights.
"""

import json

from absl import app
from absl import flags

import numpy as np
import tensorflow as tf

from l3_tf import audio_frontend
from l3_tf import audio_params as audio_params_lib
from l3_tf import image_ops
from l3_tf import model as model_lib
from l3_tf import model_summary

_WORKDIR = flags.DEFINE_string("workdir", "runs/demo", "output directory")


def generated_pair(seed: int = 0):
  """A 320x240 frame with a red disc and a 1-second 440 Hz tone in noise."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:240, :320]
  frame = rng.integers(0, 80, (240, 320, 3)).astype(np.uint8)
  frame[(yy - 120) ** 2 + (xx - 160) ** 2 < 50 ** 2] = (220, 30, 30)
  t = np.arange(audio_params_lib.DEFAULT.clip_samples) / 48000.0
  sound = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)
  return frame, sound.astype(np.float32)


def main(argv):
  del argv
  tf.keras.utils.set_random_seed(0)
  avc = model_lib.avc_network(model_lib.ModelConfig())
  avc.summary(expand_nested=False)
  counts = model_summary.parameter_counts(avc)
  for part, count in counts.items():
    print(f"{part:>14}: {count:,} parameters")
  frame, sound = generated_pair()
  image = image_ops.preprocess_for_eval(tf.constant(frame))[tf.newaxis]  # [1, 224, 224, 3]
  spectrogram = audio_frontend.log_spectrogram(tf.constant(sound)[tf.newaxis])  # [1, 257, 199, 1]
  logits = avc({"image": image, "spectrogram": spectrogram}, training=False)
  probability = float(tf.nn.softmax(logits)[0, 1])
  print(f"P(corresponds) of a generated frame and sound, untrained weights: "
        f"{probability:.4f}")
  print("DEMO_RESULT " + json.dumps({"parameters": counts,
                                     "untrained_probability": probability}))


if __name__ == "__main__":
  app.run(main)
