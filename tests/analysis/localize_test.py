"""Localisation heatmaps and overlay geometry."""

import numpy as np
import pytest
import tensorflow as tf

from l3_tf.analysis import localize
from l3_tf.analysis import overlays
from l3_tf.data import audio_frontend
from l3_tf.model import networks as model_lib
from l3_tf.training import compiled_check
from tests import testing

TINY = model_lib.ModelConfig(width_multiplier=1 / 32)


@pytest.mark.parametrize("cell", [(0, 0), (3, 5), (27, 27), (13, 0)])
def test_upsampled_peak_lies_in_its_cell_block(cell):
  grid = np.zeros((28, 28))
  grid[cell] = 1.0
  pixels = localize.upsample_grid(grid, 224, 224)
  rows, cols = np.nonzero(pixels == pixels.max())
  assert np.all(rows // 8 == cell[0]) and np.all(cols // 8 == cell[1])
  # Pixels of the block's centre are half a pixel from the cell centre on
  # each axis: (1 - 0.5 / 8) ** 2 of its value (1 at the clamped borders).
  assert pixels.max() >= (1 - 0.5 / 8) ** 2 - 1e-12


def test_upsample_constant_and_trailing_pixels():
  pixels = localize.upsample_grid(np.full((32, 42), 0.3), 259, 341)
  assert pixels.shape == (259, 341)
  np.testing.assert_allclose(pixels, 0.3)
  ramp = localize.upsample_grid(np.arange(4.0)[None, :].repeat(2, 0), 16, 37)
  # Constant beyond the last cell centre (pixel 8 * 3 + 3.5), covering the
  # 5 pixels that floor pooling leaves to no cell.
  np.testing.assert_allclose(ramp[:, 28:], 3.0)
  assert np.all(np.diff(ramp[0]) >= 0)


def test_spectrogram_axes_match_the_front_end():
  freqs, times = overlays.spectrogram_axes()
  assert freqs[11] == pytest.approx(1031.25)
  assert times[0] == pytest.approx(0.005) and times[-1] == pytest.approx(0.995)
  t = np.arange(48000) / 48000
  spec = audio_frontend.log_spectrogram(
      tf.constant(np.sin(2 * np.pi * 3000 * t)[None], tf.float32)).numpy()
  peak_hz = freqs[spec[0, :, 100, 0].argmax()]
  assert abs(peak_hz - 3000) <= 93.75 / 2
  left, right, bottom, top = overlays.spectrogram_extent()
  assert (left, right) == pytest.approx((0.0025, 0.9975))
  assert bottom == pytest.approx(-46.875) and top == pytest.approx(24046.875)


def test_audio_cells_cover_8_bins_and_8_frames():
  # A 32 x 24 conv4 grid with one hot cell upsampled over 257 x 199.
  grid = np.zeros((32, 24))
  grid[4, 10] = 1.0
  heat = localize.upsample_grid(grid, 257, 199)
  rows, cols = np.nonzero(heat == heat.max())
  assert set(rows // 8) == {4} and set(cols // 8) == {10}
  freqs, times = overlays.spectrogram_axes()
  assert 4 * 8 * 93.75 <= freqs[rows].min() and freqs[rows].max() < 5 * 8 * 93.75


def test_correspondence_map_matches_head_on_pooled_position():
  avc = model_lib.avc_network(TINY)
  vision, audio, head = model_lib.towers_of(avc)
  rng = np.random.default_rng(0)
  image = rng.uniform(-1, 1, (2, 224, 224, 3)).astype(np.float32)
  spec = rng.normal(size=(2, 257, 199, 1)).astype(np.float32)
  vision_map = vision(image)["conv4_2"]
  sound = audio(spec)["embedding_512"]
  heat = localize.correspondence_map(vision_map, sound, head).numpy()
  assert heat.shape == (2, 28, 28)
  assert np.all((heat >= 0) & (heat <= 1))
  # Position (i, j) scores exactly that position's vector: the head
  # evaluated two ways, within its forward bound (normwise on the logits).
  i, j = 5, 17
  logits = head([vision_map[:, i, j, :], sound])
  bound = compiled_check.forward_bound(head)
  testing.assert_probability_close(heat[:, i, j], tf.nn.softmax(logits)[:, 1],
                                   bound, logits, what="map at (5, 17)")
  log_odds = localize.correspondence_log_odds(vision_map, sound, head).numpy()
  # |d(l1 - l0)| <= sqrt(2) ||dl|| <= sqrt(2) bound ||l||.
  allowed = np.sqrt(2) * bound * np.linalg.norm(logits, axis=1)
  assert np.all(np.abs(log_odds[:, i, j] - (logits[:, 1] - logits[:, 0]))
                <= allowed)


def test_localizer_covers_the_whole_frame(tmp_path):
  avc = model_lib.avc_network(TINY)
  localizer = localize.Localizer(avc, TINY)
  frame = np.random.default_rng(1).integers(0, 255, (240, 320, 3), np.uint8)
  result = localizer(frame, np.zeros(48000, np.float32))
  assert result.frame.shape == (256, 341, 3)
  assert result.grid.shape == (32, 42)
  assert result.pixels.shape == (256, 341)
  assert 0 <= result.probability <= 1
  assert result.log_odds.shape == (32, 42)
  # tf.sigmoid of these float32 log-odds: a few-ulp float32 approximation
  # of the logistic function (16 u allowed) against float64.
  np.testing.assert_allclose(result.grid, 1 / (1 + np.exp(-result.log_odds)),
                             rtol=16 * 2.0**-24)
  overlays.save_image_overlay(result.frame, result.pixels,
                              str(tmp_path / "frame.png"), title="t")
  overlays.save_spectrogram_overlay(np.zeros((257, 199)), np.eye(32, 24),
                                    str(tmp_path / "spec.png"))
  for name in ("frame.png", "spec.png"):
    assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
  with pytest.raises(ValueError, match="does not match the frame"):
    overlays.save_image_overlay(result.frame, result.grid, str(tmp_path / "x.png"))


def _rendered_hot_centre(fig, ax):
  """Data coordinates (x, y) of the centroid of the red (hot) pixels that
  the Agg canvas drew for `ax` (jet's top end over a black background)."""
  fig.canvas.draw()
  rgba = np.asarray(fig.canvas.buffer_rgba()).astype(int)  # [H, W, 4]
  r, g, b = rgba[..., 0], rgba[..., 1], rgba[..., 2]
  rows, cols = np.nonzero((r > 40) & (r > 2 * g) & (r > 2 * b))
  assert rows.size > 20, "no hot pixels drawn"
  height = rgba.shape[0]
  # Buffer row 0 is the top; display y grows upwards from the bottom.
  display = np.stack([cols + 0.5, height - rows - 0.5], axis=1).mean(axis=0)
  return ax.transData.inverted().transform(display)


def test_drawn_heat_lands_on_its_cell_of_the_frame_and_spectrogram():
  """What the figures show, not only the arrays: rendered, the hot cell's
  colour lies over that cell's pixels of the frame, and over its seconds and
  Hz on the spectrogram's labelled axes."""
  from matplotlib import figure
  from matplotlib.backends import backend_agg
  # Frame: 8 x 12 cells of 8 px; cell (2, 9) pools rows 16..23, cols 72..79.
  grid = np.zeros((8, 12))
  grid[2, 9] = 1.0
  frame = np.zeros((64, 96, 3))
  fig = figure.Figure(figsize=(6.4, 4.8), dpi=100)
  backend_agg.FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  heat = overlays.draw_image_overlay(ax, frame,
                                     localize.upsample_grid(grid, 64, 96))
  picture, shown = ax.images
  assert shown is heat
  assert picture.get_extent() == shown.get_extent() == [-0.5, 95.5, 63.5,
                                                        -0.5]
  x, y = _rendered_hot_centre(fig, ax)
  assert x == pytest.approx(8 * 9 + 3.5, abs=0.5)
  assert y == pytest.approx(8 * 2 + 3.5, abs=0.5)
  # Spectrogram: cell (4, 10) of the 32 x 24 audio grid pools bins 32..39
  # (centre 35.5 x 93.75 Hz) and frames 80..87 (centre frame 83.5, at
  # 83.5 x hop + window / 2 seconds).
  grid = np.zeros((32, 24))
  grid[4, 10] = 1.0
  fig = figure.Figure(figsize=(6.4, 4.8), dpi=100)
  backend_agg.FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  overlays.draw_spectrogram_overlay(ax, np.zeros((257, 199)), grid)
  spectrogram, shown = ax.images
  assert spectrogram.get_extent() == shown.get_extent() == pytest.approx(
      list(overlays.spectrogram_extent()))
  assert ax.get_xlabel() == "time (s)" and ax.get_ylabel() == "frequency (Hz)"
  seconds, hz = _rendered_hot_centre(fig, ax)
  assert hz == pytest.approx(35.5 * 93.75, abs=93.75)
  assert seconds == pytest.approx(83.5 * 0.005 + 0.005, abs=0.005)
