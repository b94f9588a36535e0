"""Speed and accuracy of l3_tf.data.media_audio.resample (polyphase FIR, scipy).

For each common input rate, resamples 60 s of a 1 kHz sine to 48 kHz and
prints seconds of audio per second of CPU (x real time, one core) and the
max error against the analytic 48 kHz sine away from the edges.

  python benchmarks/resample.py
"""

import json
import time

import numpy as np

from l3_tf.data import media_audio

SECONDS = 60


def main():
  results = {}
  for rate in (8000, 16000, 22050, 32000, 44100):
    t_in = np.arange(SECONDS * rate) / rate
    x = np.sin(2 * np.pi * 1000.0 * t_in).astype(np.float32)
    media_audio.resample(x[:rate], rate, 48000)  # warm-up
    best = float("inf")
    for _ in range(3):
      start = time.process_time()
      y = media_audio.resample(x, rate, 48000)
      best = min(best, time.process_time() - start)
    t_out = np.arange(y.shape[0]) / 48000
    error = np.max(np.abs(y - np.sin(2 * np.pi * 1000.0 * t_out))[
        48000:-48000])
    results[rate] = {"x_real_time": round(SECONDS / best), "max_error":
                     float(f"{error:.2e}")}
    print(f"{rate:6d} Hz -> 48 kHz: {SECONDS / best:7.0f}x real time on one "
          f"core, max error {error:.1e}")
  print("RESAMPLE_RESULT " + json.dumps(results))


if __name__ == "__main__":
  main()
