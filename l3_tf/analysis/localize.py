"""Where in the frame the sound comes from: AVC evidence per image location.

The fusion head scores the concatenation of two 512-d vectors; the vision
vector is a global max pool of the conv4_2 map. Scoring the audio embedding
against the conv4_2 vector of *each* spatial position instead of the pooled
one gives P(corresponds) per location: a heatmap over the frame. The vision
trunk runs fully convolutionally, so the whole frame (short side 256) is
covered, not only its central 224 crop.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from l3_tf.data import audio_frontend
from l3_tf.data import audio_params as audio_params_lib
from l3_tf.data import image_ops
from l3_tf.model import networks as model_lib


def correspondence_log_odds(vision_map: tf.Tensor, audio_embedding: tf.Tensor,
                            head: keras.Model) -> tf.Tensor:
  """log(P(corresponds) / P(not)) of each position of a vision map with one
  sound each: the fusion head's logit margin, which keeps ranking positions
  where P(corresponds) rounds to 1 in float32 (an untrained network's map
  often does).

  Args:
    vision_map: `[b, h, w, c]` conv4_2 (after ReLU) of the vision tower.
    audio_embedding: `[b, c]` pool4 of the audio tower.
    head: the fusion head of the same network.

  Returns:
    `[b, h, w]` log-odds.
  """
  shape = tf.shape(vision_map)
  b, h, w, c = shape[0], shape[1], shape[2], vision_map.shape[-1]
  positions = tf.reshape(vision_map, [b * h * w, c])  # [b*h*w, c]
  sounds = tf.repeat(audio_embedding, h * w, axis=0)  # [b*h*w, c]
  logits = tf.cast(head([positions, sounds], training=False),
                   tf.float32)  # [b*h*w, 2]
  return tf.reshape(logits[:, 1] - logits[:, 0], [b, h, w])  # [b, h, w]


def correspondence_map(vision_map: tf.Tensor, audio_embedding: tf.Tensor,
                       head: keras.Model) -> tf.Tensor:
  """P(corresponds) of each position of a vision map with one sound each
  (`[b, h, w]`; the arguments as for `correspondence_log_odds`)."""
  # softmax over two logits = sigmoid of their margin.
  return tf.sigmoid(correspondence_log_odds(vision_map, audio_embedding,
                                            head))


@dataclasses.dataclass
class Heatmap:
  """A localisation result.

  Attributes:
    frame: float32 `[H, W, 3]` in [0, 1], the frame after resizing its short
      side to 256 (the image the heatmap is aligned to).
    grid: `[h, w]` P(corresponds) per conv4 cell; cell (i, j) covers pixels
      [8i, 8i + 8) x [8j, 8j + 8) of `frame`.
    pixels: `[H, W]` the grid upsampled to the frame (`upsample_grid`).
    probability: P(corresponds) of the pair as the network scores it (on the
      central crop, as in training).
    log_odds: `[h, w]` log(P / (1 - P)) per cell (`correspondence_log_odds`),
      or None; ranks the cells where `grid` saturates at 1.
  """

  frame: np.ndarray
  grid: np.ndarray
  pixels: np.ndarray
  probability: float
  log_odds: np.ndarray | None = None


# Three 2x2 pools: one conv4 cell spans 8 input pixels (or spectrogram bins
# and frames) per axis.
CELL_STRIDE = 8


def upsample_grid(grid: np.ndarray, height: int, width: int,
                  stride: int = CELL_STRIDE) -> np.ndarray:
  """Upsamples `[h, w]` cell values to `[height, width]` pixels.

  Cell (i, j) is centred on pixel (stride * i + (stride - 1) / 2, ...), the
  centre of the block it pools; values are interpolated bilinearly between
  cell centres and held constant beyond the outermost centres (including the
  up to stride - 1 trailing pixels that floor pooling leaves to no cell).
  """
  grid = np.asarray(grid, np.float64)
  rows = (np.arange(height) - (stride - 1) / 2) / stride  # in cell units
  cols = (np.arange(width) - (stride - 1) / 2) / stride
  rows = np.clip(rows, 0, grid.shape[0] - 1)
  cols = np.clip(cols, 0, grid.shape[1] - 1)
  r0 = np.floor(rows).astype(int)
  c0 = np.floor(cols).astype(int)
  r1 = np.minimum(r0 + 1, grid.shape[0] - 1)
  c1 = np.minimum(c0 + 1, grid.shape[1] - 1)
  fr = (rows - r0)[:, None]
  fc = (cols - c0)[None, :]
  top = grid[r0][:, c0] * (1 - fc) + grid[r0][:, c1] * fc
  bottom = grid[r1][:, c0] * (1 - fc) + grid[r1][:, c1] * fc
  return top * (1 - fr) + bottom * fr  # [height, width]


def peak_position(heatmap: Heatmap) -> tuple[float, float]:
  """(x, y) of the centre of the heatmap's highest cell (by log-odds when
  known, so that a map saturated at P = 1 still has a peak), as fractions of
  the width and height of `heatmap.frame` (so of any copy of the frame)."""
  scores = heatmap.grid if heatmap.log_odds is None else heatmap.log_odds
  row, col = np.unravel_index(np.argmax(scores), scores.shape)
  height, width = heatmap.frame.shape[:2]
  half = CELL_STRIDE / 2
  return ((CELL_STRIDE * col + half) / width,
          (CELL_STRIDE * row + half) / height)


class Localizer:
  """Heatmaps of a trained AVC network; build once, call many times."""

  def __init__(self, avc: keras.Model, config: model_lib.ModelConfig,
               image_params: image_ops.ImageParams = image_ops.DEFAULT,
               audio_params: audio_params_lib.AudioParams = audio_params_lib.DEFAULT):
    vision, audio, head = model_lib.towers_of(avc)
    self._full_frame_vision = model_lib.vision_tower(
        config, image_params, any_size=True)
    self._full_frame_vision.set_weights(vision.get_weights())
    self._vision, self._audio, self._head = vision, audio, head
    self._image_params = image_params
    self._audio_params = audio_params
    # One graph for every frame size: eager calls of the towers cost more
    # than the computation for small networks.
    self._localize = tf.function(
        self._localize_graph, autograph=False, input_signature=[
            tf.TensorSpec([None, None, 3], tf.float32),
            tf.TensorSpec([audio_params.clip_samples], tf.float32)])

  def _localize_graph(self, image: tf.Tensor, waveform: tf.Tensor):
    """[H, W, 3] in [0, 1], [clip] -> (resized frame, log-odds grid,
    probability)."""
    image = image_ops.resize_short_side(
        image, self._image_params.resize_short_side)  # [H', W', 3] in [0, 1]
    spectrogram = audio_frontend.log_spectrogram(
        waveform[tf.newaxis], self._audio_params)  # [1, 257, 199, 1]
    sound = self._audio(spectrogram, training=False)["embedding_512"]
    vision_map = self._full_frame_vision(
        image_ops.scale_to_symmetric_range(image)[tf.newaxis],
        training=False)["conv4_2"]  # [1, h, w, c]
    log_odds = correspondence_log_odds(vision_map, sound,
                                       self._head)[0]  # [h, w]
    crop = image_ops.central_crop(image, self._image_params.crop_size)
    pooled = self._vision(image_ops.scale_to_symmetric_range(crop)[tf.newaxis],
                          training=False)["embedding_512"]
    probability = tf.nn.softmax(
        tf.cast(self._head([pooled, sound], training=False), tf.float32))[0, 1]
    return image, log_odds, probability

  def __call__(self, frame: np.ndarray, waveform: np.ndarray) -> Heatmap:
    """Localises a 1-second sound (48 kHz, [48000]) in a frame [H, W, c]."""
    image, log_odds, probability = self._localize(
        image_ops.to_float_rgb(tf.constant(frame)),
        tf.constant(np.asarray(waveform, np.float32)))
    frame_01, log_odds = image.numpy(), log_odds.numpy()
    grid = tf.sigmoid(log_odds).numpy()  # [h, w] P(corresponds)
    return Heatmap(frame=frame_01, grid=grid,
                   pixels=upsample_grid(grid, *frame_01.shape[:2]),
                   probability=float(probability), log_odds=log_odds)
