"""Heatmap overlays on frames and spectrograms, with their geometry.

Geometry is kept in plain functions (tested): a conv4 cell covers an 8 x 8
block of its input, a spectrogram bin k is centred on k * 93.75 Hz, and
frame t on t * hop + window / 2 seconds.
"""

import numpy as np

from l3_tf.analysis import localize
from l3_tf.data import audio_params as audio_params_lib


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


def _check_heat(frame: np.ndarray, heat: np.ndarray) -> None:
  if heat.shape != frame.shape[:2]:
    raise ValueError(f"heatmap shape {heat.shape} does not match the frame "
                     f"{frame.shape[:2]}; upsample it first")


def draw_image_overlay(ax, frame: np.ndarray, heat: np.ndarray | None,
                       alpha: float = 0.5, vmin: float | None = None,
                       vmax: float | None = None):
  """Draws `frame` [H, W, 3] in [0, 1] and `heat` [H, W] (pixel-aligned)
  over it on a matplotlib axis; returns the heat image (for a colorbar).

  vmin / vmax default to the heatmap's own range.
  """
  ax.imshow(frame, interpolation="nearest")
  ax.set_axis_off()
  if heat is None:
    return None
  _check_heat(frame, heat)
  return ax.imshow(heat, cmap="jet", alpha=alpha, interpolation="nearest",
                   vmin=float(np.min(heat)) if vmin is None else vmin,
                   vmax=float(np.max(heat)) if vmax is None else vmax)


def draw_spectrogram_overlay(ax, spectrogram: np.ndarray,
                             cell_grid: np.ndarray | None,
                             params: audio_params_lib.AudioParams = audio_params_lib.DEFAULT,
                             alpha: float = 0.5, vmin: float | None = None,
                             vmax: float | None = None, labels: bool = True):
  """Draws a log-spectrogram [bins, frames] with a conv4 grid [h, w] over it
  (upsampled with `localize.upsample_grid`), axes in s and Hz, low
  frequencies at the bottom; returns the heat image (or None)."""
  spectrogram = np.squeeze(spectrogram)
  expected = params.spectrogram_shape[:2]
  if spectrogram.shape != expected:
    raise ValueError(f"spectrogram shape {spectrogram.shape}; the audio "
                     f"front end gives {expected} (bins, frames)")
  extent = spectrogram_extent(params)
  ax.imshow(spectrogram, origin="lower", aspect="auto", cmap="gray",
            extent=extent)
  shown = None
  if cell_grid is not None:
    heat = localize.upsample_grid(cell_grid, *spectrogram.shape)
    shown = ax.imshow(heat, origin="lower", aspect="auto", cmap="jet",
                      alpha=alpha, extent=extent, vmin=vmin, vmax=vmax)
  if labels:
    ax.set_xlabel("time (s)", fontsize=7)
    ax.set_ylabel("frequency (Hz)", fontsize=7)
  ax.tick_params(labelsize=6)
  return shown


def save_image_overlay(frame: np.ndarray, heat: np.ndarray, path: str,
                       title: str = "", alpha: float = 0.5) -> str:
  """Writes `frame` [H, W, 3] in [0, 1] with `heat` [H, W] over it as a PNG."""
  _check_heat(frame, heat)
  plt = _pyplot()
  height, width = heat.shape
  fig, ax = plt.subplots(figsize=(4 * width / max(height, width) + 0.6,
                                  4 * height / max(height, width) + 0.4))
  shown = draw_image_overlay(ax, frame, heat, alpha)
  fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
  return _save(plt, fig, ax, path, title)


def save_spectrogram_overlay(spectrogram: np.ndarray, cell_grid: np.ndarray,
                             path: str, title: str = "",
                             params: audio_params_lib.AudioParams = audio_params_lib.DEFAULT,
                             alpha: float = 0.5) -> str:
  """Writes a log-spectrogram [bins, frames] with a conv4 activation grid
  [h, w] over it, axes in seconds and Hz (low frequencies at the bottom)."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(5, 4))
  shown = draw_spectrogram_overlay(ax, spectrogram, cell_grid, params, alpha)
  fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
  return _save(plt, fig, ax, path, title)


def save_grid(panels: list, path: str, title: str = "", columns: int = 4,
              panel_inches: tuple[float, float] = (2.4, 2.4)) -> str:
  """Writes a grid of panels as one PNG.

  Args:
    panels: one `(draw, caption)` per panel, where `draw(ax)` draws on a
      matplotlib axis (e.g. a lambda around `draw_image_overlay`).
    path: the PNG to write.
    title: the figure's title.
    columns: panels per row.
    panel_inches: (width, height) of one panel.
  """
  if not panels:
    raise ValueError(f"no panels to draw into {path}")
  plt = _pyplot()
  columns = min(columns, len(panels))
  rows = -(-len(panels) // columns)
  fig, axes = plt.subplots(rows, columns, squeeze=False, layout="constrained",
                           figsize=(panel_inches[0] * columns,
                                    panel_inches[1] * rows + 0.6))
  for ax in axes.ravel()[len(panels):]:
    ax.set_axis_off()
  for ax, (draw, caption) in zip(axes.ravel(), panels):
    draw(ax)
    ax.set_title(caption, fontsize=7)
  if title:
    fig.suptitle(title, fontsize=9)
  fig.savefig(path, dpi=80)
  plt.close(fig)
  return path
