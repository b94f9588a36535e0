"""Pure image ops of the vision front end (PAPER.md §3).

Tensor in, tensor out; randomness only through stateless ops and an explicit
`seed` (a `[2]` int tensor), so every op behaves the same eagerly, in
`tf.function` and in `tf.data.Dataset.map`, and a seed replays a pipeline.
Images flow as float32 in [0, 1] until `scale_to_symmetric_range`.
"""

import dataclasses

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class ImageParams:
  """Vision front-end constants and augmentation ranges.

  Attributes:
    resize_short_side: frames are scaled so their short side is this.
    crop_size: the square crop fed to the vision tower.
    flip_probability: chance of a horizontal flip (0.5 in training).
    brightness_max_delta: brightness shift, uniform in +-delta on [0, 1]
      pixels (OpenL3's trainer used 32/255).
    saturation_range: saturation factor, uniform in [lower, upper).
  """

  resize_short_side: int = 256
  crop_size: int = 224
  flip_probability: float = 0.5
  brightness_max_delta: float = 32.0 / 255.0
  saturation_range: tuple[float, float] = (0.5, 1.5)

  def __post_init__(self):
    if self.crop_size > self.resize_short_side:
      raise ValueError(f"crop_size={self.crop_size} is larger than "
                       f"resize_short_side={self.resize_short_side}")
    lower, upper = self.saturation_range
    if not 0 <= lower <= upper:
      raise ValueError(f"saturation_range={self.saturation_range} must be "
                       "0 <= lower <= upper")


DEFAULT = ImageParams()


def to_float_rgb(image: tf.Tensor) -> tf.Tensor:
  """Any `[..., h, w, c]` image with c in {1, 3, 4} -> float32 RGB in [0, 1].

  Grayscale is replicated to three channels; RGBA drops its alpha channel
  (frames have no meaningful transparency). uint8 is scaled by 1/255; float
  input is taken to be in [0, 1] already.
  """
  image = tf.convert_to_tensor(image)
  channels = image.shape[-1]
  if channels is None:
    raise ValueError(f"image shape={image.shape}: the channel count must be "
                     "static (1, 3 or 4)")
  if image.dtype == tf.uint8:
    image = tf.cast(image, tf.float32) / 255.0
  elif image.dtype.is_floating:
    image = tf.cast(image, tf.float32)
  else:
    raise ValueError(f"image dtype={image.dtype.name}: expected uint8 or float")
  if channels == 1:
    image = tf.image.grayscale_to_rgb(image)
  elif channels == 4:
    image = image[..., :3]
  elif channels != 3:
    raise ValueError(f"image shape={image.shape}: expected 1 (grayscale), "
                     "3 (RGB) or 4 (RGBA) channels")
  return image


def short_side_size(height: tf.Tensor, width: tf.Tensor,
                    short_side: int) -> tf.Tensor:
  """The [new_height, new_width] that makes the short side `short_side`."""
  height = tf.cast(height, tf.float64)
  width = tf.cast(width, tf.float64)
  scale = short_side / tf.minimum(height, width)
  new_size = tf.stack([tf.round(height * scale), tf.round(width * scale)])
  return tf.cast(tf.maximum(new_size, short_side), tf.int32)  # [2]


def resize_short_side(image: tf.Tensor, short_side: int) -> tf.Tensor:
  """Scales `[h, w, c]` (or `[n, h, w, c]`) so min(h, w) == short_side.

  Keeps the aspect ratio (long side rounded to the nearest pixel); frames
  smaller than `short_side` are upscaled. Bilinear with antialiasing, so
  downscaling 720p frames does not alias.
  """
  shape = tf.shape(image)
  new_size = short_side_size(shape[-3], shape[-2], short_side)

  def resize():
    return tf.image.resize(image, new_size, method="bilinear", antialias=True)

  # Stored video frames already have the target short side: resizing them
  # would be an exact identity costing ~2 ms per frame in the input pipeline.
  same_size = tf.reduce_all(tf.equal(new_size, shape[-3:-1]))
  resized = tf.cond(same_size, lambda: tf.cast(image, tf.float32), resize)
  return tf.clip_by_value(resized, 0.0, 1.0)


def central_crop(image: tf.Tensor, size: int) -> tf.Tensor:
  """The central `size x size` window of `[h, w, c]` (h, w >= size)."""
  shape = tf.shape(image)
  top = (shape[-3] - size) // 2
  left = (shape[-2] - size) // 2
  return tf.image.crop_to_bounding_box(image, top, left, size, size)


def random_crop(image: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
  """A uniformly placed `size x size` window of `[h, w, c]`."""
  channels = image.shape[-1]
  return tf.image.stateless_random_crop(image, [size, size, channels], seed)


def random_flip(image: tf.Tensor, probability: float,
                seed: tf.Tensor) -> tf.Tensor:
  """Mirrors `[h, w, c]` left-right with the given probability."""
  draw = tf.random.stateless_uniform([], seed)
  return tf.cond(draw < probability,
                 lambda: tf.image.flip_left_right(image), lambda: image)


def random_brightness(image: tf.Tensor, max_delta: float,
                      seed: tf.Tensor) -> tf.Tensor:
  """Adds one uniform offset in [-max_delta, max_delta] to every pixel."""
  if max_delta <= 0:
    return image
  return tf.clip_by_value(
      tf.image.stateless_random_brightness(image, max_delta, seed), 0.0, 1.0)


def random_saturation(image: tf.Tensor, saturation_range: tuple[float, float],
                      seed: tf.Tensor) -> tf.Tensor:
  """Scales the HSV saturation by a uniform factor in [lower, upper)."""
  lower, upper = saturation_range
  if lower == upper == 1.0:
    return image
  return tf.clip_by_value(
      tf.image.stateless_random_saturation(image, lower, upper, seed), 0.0,
      1.0)


def scale_to_symmetric_range(image: tf.Tensor) -> tf.Tensor:
  """[0, 1] -> [-1, 1], the input range of the vision tower."""
  return image * 2.0 - 1.0


def preprocess_for_train(image: tf.Tensor, seed: tf.Tensor,
                         params: ImageParams = DEFAULT) -> tf.Tensor:
  """Decoded frame `[h, w, c]` -> augmented `[224, 224, 3]` in [-1, 1].

  Short side to 256, random 224 crop, random flip, brightness then saturation
  jitter, each op with its own seed derived from `seed`.
  """
  seeds = tf.random.experimental.stateless_split(seed, 4)  # [4, 2]
  image = resize_short_side(to_float_rgb(image), params.resize_short_side)
  image = random_crop(image, params.crop_size, seeds[0])  # [224, 224, 3]
  return augment_crop(image, seeds, params)  # [224, 224, 3]


# Rows and columns decoded beyond a crop window on each side. libjpeg's
# cropped decode upsamples chroma without its neighbours at the window's edge
# (1-3 levels off on 4:2:0 frames); with 1 px of context the pixels equalled a
# full decode on 344 random windows of real clips, 8 px covers 4x chroma
# subsampling too.
_JPEG_CROP_CONTEXT = 8


def random_crop_offset(height: tf.Tensor, width: tf.Tensor, size: int,
                       seed: tf.Tensor) -> tf.Tensor:
  """[top, left] of the window `random_crop` takes from an `h x w` image.

  The same draw as `tf.image.stateless_random_crop` (one uniform int32 per
  dimension modulo the slack), so either gives the same window for a seed.
  """
  shape = tf.stack([tf.cast(height, tf.int32), tf.cast(width, tf.int32), 3])
  limit = shape - tf.constant([size, size, 3]) + 1  # [3]
  offset = tf.random.stateless_uniform([3], seed, maxval=tf.int32.max,
                                       dtype=tf.int32) % limit
  return offset[:2]  # [2]


def decode_jpeg_window(jpeg: tf.Tensor, top: tf.Tensor, left: tf.Tensor,
                       size: int) -> tf.Tensor:
  """The `size x size` window at (top, left) of a JPEG, uint8 `[size, size, 3]`.

  Decodes only the window plus a little context (`_JPEG_CROP_CONTEXT`), so
  the pixels are those of `tf.io.decode_jpeg(jpeg, channels=3)` cropped
  (tests/image_ops_test.py checks it on real frames) at a fraction of the
  cost for wide frames.
  """
  shape = tf.io.extract_jpeg_shape(jpeg)  # [h, w, c]
  start = tf.maximum(tf.stack([top, left]) - _JPEG_CROP_CONTEXT, 0)  # [2]
  stop = tf.minimum(tf.stack([top, left]) + size + _JPEG_CROP_CONTEXT,
                    shape[:2])  # [2]
  window = tf.io.decode_and_crop_jpeg(
      jpeg, tf.concat([start, stop - start], 0), channels=3)
  inner = tf.stack([top, left]) - start
  image = window[inner[0]:inner[0] + size, inner[1]:inner[1] + size]
  return tf.ensure_shape(image, [size, size, 3])  # [size, size, 3] uint8


def _jpeg_needs_resize(jpeg: tf.Tensor, params: ImageParams
                       ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """(height, width, whether the short-side resize changes the frame)."""
  shape = tf.io.extract_jpeg_shape(jpeg)  # [h, w, c] int32
  new_size = short_side_size(shape[0], shape[1], params.resize_short_side)
  return shape[0], shape[1], tf.reduce_any(tf.not_equal(new_size, shape[:2]))


def crop_jpeg_for_train(jpeg: tf.Tensor, seed: tf.Tensor,
                        params: ImageParams = DEFAULT) -> tf.Tensor:
  """JPEG bytes -> the float `[224, 224, 3]` random crop in [0, 1].

  Exactly `random_crop(resize_short_side(to_float_rgb(decode_jpeg(jpeg))))`;
  when the frame already has the target short side (stored video frames),
  only the crop window is decoded.
  """
  height, width, needs_resize = _jpeg_needs_resize(jpeg, params)
  size = params.crop_size

  def full_decode():
    image = resize_short_side(to_float_rgb(tf.io.decode_jpeg(jpeg, channels=3)),
                              params.resize_short_side)
    return random_crop(image, size, seed)

  def window_decode():
    top, left = tf.unstack(random_crop_offset(height, width, size, seed))
    image = to_float_rgb(decode_jpeg_window(jpeg, top, left, size))
    return tf.clip_by_value(image, 0.0, 1.0)  # as resize_short_side does

  image = tf.cond(needs_resize, full_decode, window_decode)
  return tf.ensure_shape(image, [size, size, 3])  # [224, 224, 3]


def crop_jpeg_for_eval(jpeg: tf.Tensor,
                       params: ImageParams = DEFAULT) -> tf.Tensor:
  """JPEG bytes -> the float central `[224, 224, 3]` crop in [0, 1].

  Exactly `central_crop(resize_short_side(to_float_rgb(decode_jpeg(jpeg))))`,
  decoding only the window when no resize is needed.
  """
  height, width, needs_resize = _jpeg_needs_resize(jpeg, params)
  size = params.crop_size

  def full_decode():
    image = resize_short_side(to_float_rgb(tf.io.decode_jpeg(jpeg, channels=3)),
                              params.resize_short_side)
    return central_crop(image, size)

  def window_decode():
    image = to_float_rgb(decode_jpeg_window(
        jpeg, (height - size) // 2, (width - size) // 2, size))
    return tf.clip_by_value(image, 0.0, 1.0)

  image = tf.cond(needs_resize, full_decode, window_decode)
  return tf.ensure_shape(image, [size, size, 3])  # [224, 224, 3]


def augment_crop(image: tf.Tensor, seeds: tf.Tensor,
                 params: ImageParams = DEFAULT) -> tf.Tensor:
  """Flip, brightness, saturation of a `[224, 224, 3]` crop; -> [-1, 1].

  `seeds` is the `[4, 2]` split of `preprocess_for_train`; rows 1-3 are used.
  """
  image = random_flip(image, params.flip_probability, seeds[1])
  return _jitter(image, seeds, params)


def _jitter(image: tf.Tensor, seeds: tf.Tensor, params: ImageParams
            ) -> tf.Tensor:
  """Brightness then saturation (seeds rows 2, 3); -> [-1, 1]."""
  image = random_brightness(image, params.brightness_max_delta, seeds[2])
  image = random_saturation(image, params.saturation_range, seeds[3])
  return scale_to_symmetric_range(image)  # [224, 224, 3]


def preprocess_jpeg_for_train(jpeg: tf.Tensor, seed: tf.Tensor,
                              params: ImageParams = DEFAULT) -> tf.Tensor:
  """`preprocess_for_train(decode_jpeg(jpeg, channels=3), seed)`, bit for bit.

  When the frame needs no resize, only the crop window is decoded and it is
  flipped while still uint8 (a flip is a permutation of pixels, so it
  commutes with the per-pixel scaling; a third of the bytes to move).
  """
  seeds = tf.random.experimental.stateless_split(seed, 4)  # [4, 2]
  height, width, needs_resize = _jpeg_needs_resize(jpeg, params)
  size = params.crop_size

  def full_decode():
    return random_flip(crop_jpeg_for_train(jpeg, seeds[0], params),
                       params.flip_probability, seeds[1])

  def window_decode():
    top, left = tf.unstack(random_crop_offset(height, width, size, seeds[0]))
    window = random_flip(decode_jpeg_window(jpeg, top, left, size),
                         params.flip_probability, seeds[1])  # uint8
    # uint8 / 255 lies in [0, 1]: resize_short_side's clip would be a no-op.
    return to_float_rgb(window)

  image = tf.cond(needs_resize, full_decode, window_decode)
  image = tf.ensure_shape(image, [size, size, 3])  # [224, 224, 3]
  return _jitter(image, seeds, params)


def preprocess_jpeg_for_eval(jpeg: tf.Tensor,
                             params: ImageParams = DEFAULT) -> tf.Tensor:
  """`preprocess_for_eval(decode_jpeg(jpeg, channels=3))`, bit for bit."""
  return scale_to_symmetric_range(crop_jpeg_for_eval(jpeg, params))


def preprocess_for_eval(image: tf.Tensor,
                        params: ImageParams = DEFAULT) -> tf.Tensor:
  """Decoded frame `[h, w, c]` -> central `[224, 224, 3]` crop in [-1, 1]."""
  image = resize_short_side(to_float_rgb(image), params.resize_short_side)
  image = central_crop(image, params.crop_size)  # [224, 224, 3]
  return scale_to_symmetric_range(image)
