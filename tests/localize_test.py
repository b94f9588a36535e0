"""Localisation heatmaps and overlay geometry."""

import numpy as np
import pytest
import tensorflow as tf

from l3_tf import audio_frontend
from l3_tf import localize
from l3_tf import model as model_lib
from l3_tf import overlays

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
  # Position (i, j) scores exactly that position's vector.
  i, j = 5, 17
  logits = head([vision_map[:, i, j, :], sound])
  np.testing.assert_allclose(heat[:, i, j], tf.nn.softmax(logits)[:, 1],
                             rtol=1e-5, atol=1e-6)


def test_localizer_covers_the_whole_frame(tmp_path):
  avc = model_lib.avc_network(TINY)
  localizer = localize.Localizer(avc, TINY)
  frame = np.random.default_rng(1).integers(0, 255, (240, 320, 3), np.uint8)
  result = localizer(frame, np.zeros(48000, np.float32))
  assert result.frame.shape == (256, 341, 3)
  assert result.grid.shape == (32, 42)
  assert result.pixels.shape == (256, 341)
  assert 0 <= result.probability <= 1
  overlays.save_image_overlay(result.frame, result.pixels,
                              str(tmp_path / "frame.png"), title="t")
  overlays.save_spectrogram_overlay(np.zeros((257, 199)), np.eye(32, 24),
                                    str(tmp_path / "spec.png"))
  for name in ("frame.png", "spec.png"):
    assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
  with pytest.raises(ValueError, match="does not match the frame"):
    overlays.save_image_overlay(result.frame, result.grid, str(tmp_path / "x.png"))
