"""Heatmap overlays on frames and spectrograms, with their geometry.

Geometry is kept in plain functions (tested): a conv4 cell covers an 8 x 8
block of its input, a spectrogram bin k is centred on k * 93.75 Hz, and
frame t on t * hop + window / 2 seconds.
"""

import numpy as np

from l3_tf import audio_params as audio_params_lib
from l3_tf import localize


def spectrogram_axes(params: audio_params_lib.AudioParams = audio_params_lib.DEFAULT
                     ) -> tuple[np.ndarray, np.ndarray]:
  """(bin centre frequencies in Hz [257], frame centre times in s [199])."""
  freqs = np.arange(params.num_bins) * params.bin_hz
  times = (np.arange(params.num_frames) * params.hop_length_samples
           + params.window_length_samples / 2) / params.sample_rate_hz
  return freqs, times


def spectrogram_extent(params: audio_params_lib.AudioParams = audio_params_lib.DEFAULT
                       ) -> tuple[float, float, float, float]:
  """matplotlib `extent` (left, right, bottom, top) of a [bins, frames] image."""
  freqs, times = spectrogram_axes(params)
  half_hop = params.hop_seconds / 2
  half_bin = params.bin_hz / 2
  return (times[0] - half_hop, times[-1] + half_hop,
          freqs[0] - half_bin, freqs[-1] + half_bin)


def _pyplot():
  import matplotlib
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt
  return plt


def _save(plt, fig, ax, path: str, title: str) -> str:
  if title:
    ax.set_title(title, fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def save_image_overlay(frame: np.ndarray, heat: np.ndarray, path: str,
                       title: str = "", alpha: float = 0.5) -> str:
  """Writes `frame` [H, W, 3] in [0, 1] with `heat` [H, W] over it as a PNG."""
  if heat.shape != frame.shape[:2]:
    raise ValueError(f"heatmap shape {heat.shape} does not match the frame "
                     f"{frame.shape[:2]}; upsample it first")
  plt = _pyplot()
  height, width = heat.shape
  fig, ax = plt.subplots(figsize=(4 * width / max(height, width) + 0.6,
                                  4 * height / max(height, width) + 0.4))
  ax.imshow(frame, interpolation="nearest")
  shown = ax.imshow(heat, cmap="jet", alpha=alpha, interpolation="nearest",
                    vmin=float(np.min(heat)), vmax=float(np.max(heat)))
  fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
  ax.set_axis_off()
  return _save(plt, fig, ax, path, title)


def save_spectrogram_overlay(spectrogram: np.ndarray, cell_grid: np.ndarray,
                             path: str, title: str = "",
                             params: audio_params_lib.AudioParams = audio_params_lib.DEFAULT,
                             alpha: float = 0.5) -> str:
  """Writes a log-spectrogram [bins, frames] with a conv4 activation grid
  [h, w] over it, axes in seconds and Hz (low frequencies at the bottom)."""
  spectrogram = np.squeeze(spectrogram)
  heat = localize.upsample_grid(cell_grid, *spectrogram.shape)
  plt = _pyplot()
  extent = spectrogram_extent(params)
  fig, ax = plt.subplots(figsize=(5, 4))
  ax.imshow(spectrogram, origin="lower", aspect="auto", cmap="gray",
            extent=extent)
  shown = ax.imshow(heat, origin="lower", aspect="auto", cmap="jet",
                    alpha=alpha, extent=extent)
  fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
  ax.set_xlabel("time (s)")
  ax.set_ylabel("frequency (Hz)")
  return _save(plt, fig, ax, path, title)
