"""Each image op: its contract, and the same result eagerly and in Dataset.map."""

import numpy as np
import pytest
import tensorflow as tf

from l3_tf.data import image_ops
from tests import testing

SEED = tf.constant([3, 7], tf.int64)


def _image(height=240, width=320, channels=3, seed=0):
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (height, width, channels)).astype(np.uint8)


def _float(image):
  return image_ops.to_float_rgb(tf.constant(image))


OPS = {
    "to_float_rgb": lambda x: image_ops.to_float_rgb(x),
    "resize_short_side": lambda x: image_ops.resize_short_side(
        image_ops.to_float_rgb(x), 256),
    "central_crop": lambda x: image_ops.central_crop(
        image_ops.resize_short_side(image_ops.to_float_rgb(x), 256), 224),
    "random_crop": lambda x: image_ops.random_crop(
        image_ops.resize_short_side(image_ops.to_float_rgb(x), 256), 224, SEED),
    "random_flip": lambda x: image_ops.random_flip(
        image_ops.to_float_rgb(x), 0.5, SEED),
    "random_brightness": lambda x: image_ops.random_brightness(
        image_ops.to_float_rgb(x), 0.125, SEED),
    "random_saturation": lambda x: image_ops.random_saturation(
        image_ops.to_float_rgb(x), (0.5, 1.5), SEED),
    "scale_to_symmetric_range": lambda x: image_ops.scale_to_symmetric_range(
        image_ops.to_float_rgb(x)),
    "preprocess_for_train": lambda x: image_ops.preprocess_for_train(x, SEED),
    "preprocess_for_eval": lambda x: image_ops.preprocess_for_eval(x),
}


RESIZING = {"resize_short_side", "central_crop", "random_crop",
            "preprocess_for_train", "preprocess_for_eval"}


@pytest.mark.parametrize("name", sorted(OPS))
def test_eager_equals_dataset_map(name):
  op = OPS[name]
  image = _image(180, 300)
  eager = op(tf.constant(image)).numpy()
  mapped = next(iter(tf.data.Dataset.from_tensors(image).map(op))).numpy()
  assert eager.shape == mapped.shape
  np.testing.assert_allclose(eager, mapped, atol=testing.image_op_tolerance(
      180, 300, resized=name in RESIZING))


@pytest.mark.parametrize("height, width, want", [
    (240, 320, (256, 341)),   # landscape 4:3
    (1280, 720, (455, 256)),  # portrait 720p
    (144, 176, (256, 313)),   # QCIF, upscaled
    (100, 100, (256, 256)),   # tiny square, upscaled
    (257, 1000, (256, 996)),  # odd sizes
])
def test_resize_short_side_keeps_aspect(height, width, want):
  resized = image_ops.resize_short_side(_float(_image(height, width)), 256)
  assert tuple(resized.shape[:2]) == want
  assert abs(want[1] / want[0] - width / height) < 0.01
  assert resized.numpy().min() >= 0 and resized.numpy().max() <= 1


def test_grayscale_and_rgba_are_converted():
  gray = _image(50, 60, 1)
  rgb = _float(gray).numpy()
  assert rgb.shape == (50, 60, 3)
  np.testing.assert_allclose(rgb[..., 0], rgb[..., 2])
  rgba = _image(50, 60, 4)
  # x / 255 (or x * (1 / 255)) in float32, values <= 1: within 2 u.
  np.testing.assert_allclose(_float(rgba).numpy(), rgba[..., :3] / 255.0,
                             atol=2 * 2.0**-24)
  for image in (gray, rgba):
    assert image_ops.preprocess_for_train(image, SEED).shape == (224, 224, 3)


def test_bad_channel_count_is_named():
  with pytest.raises(ValueError, match="channels"):
    image_ops.to_float_rgb(tf.zeros((10, 10, 2), tf.uint8))
  with pytest.raises(ValueError, match="dtype=int32"):
    image_ops.to_float_rgb(tf.zeros((10, 10, 3), tf.int32))


def test_central_crop_is_centred():
  image = np.zeros((256, 300, 3), np.float32)
  image[128, 150] = 1.0  # the centre pixel
  crop = image_ops.central_crop(tf.constant(image), 224).numpy()
  assert crop.shape == (224, 224, 3)
  assert crop[112, 112, 0] == 1.0


def test_random_crop_is_a_window_of_the_input():
  image = _float(_image(256, 300)).numpy()
  crop = image_ops.random_crop(tf.constant(image), 224, SEED).numpy()
  found = [(top, left) for top in range(33) for left in range(77)
           if np.array_equal(image[top:top + 224, left:left + 224], crop)]
  assert len(found) == 1


def test_random_ops_depend_on_seed_only():
  image = _image()
  a = image_ops.preprocess_for_train(image, SEED).numpy()
  b = image_ops.preprocess_for_train(image, SEED).numpy()
  c = image_ops.preprocess_for_train(image, SEED + 1).numpy()
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


def test_flip_rate_and_mirror():
  image = _float(_image(20, 30))
  flipped = 0
  for i in range(200):
    out = image_ops.random_flip(image, 0.5, tf.constant([i, 0], tf.int64))
    if np.array_equal(out.numpy(), image.numpy()[:, ::-1]):
      flipped += 1
    else:
      np.testing.assert_array_equal(out.numpy(), image.numpy())
  assert 70 < flipped < 130  # Binomial(200, 0.5): +-4 sigma


def test_brightness_shift_is_bounded_and_global():
  image = tf.fill((20, 30, 3), 0.5)
  for i in range(20):
    out = image_ops.random_brightness(image, 0.125,
                                      tf.constant([i, 1], tf.int64)).numpy()
    assert np.ptp(out) == 0  # one offset for every pixel: the same sum
    # 0.5 + delta, |delta| <= 0.125, rounds by at most half an ulp of 0.625.
    assert abs(out[0, 0, 0] - 0.5) <= 0.125 + 2.0**-24


def test_saturation_keeps_gray_gray():
  gray = tf.fill((8, 8, 3), 0.3)
  out = image_ops.random_saturation(gray, (0.5, 1.5), SEED).numpy()
  # The HSV round trip of a gray pixel: a few roundings of 0.3 (32 u).
  np.testing.assert_allclose(out, 0.3, atol=testing.image_op_tolerance(
      8, 8, resized=False, value_range=0.3))


def test_output_range_is_symmetric():
  out = image_ops.preprocess_for_train(_image(), SEED).numpy()
  assert out.min() >= -1 and out.max() <= 1
  assert out.shape == (224, 224, 3)


def _jpeg(height, width, seed=0, grayscale=False):
  """A JPEG of a smooth picture with detail (4:2:0 chroma, like video frames)."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:height, 0:width]
  picture = np.stack([128 + 100 * np.sin(x / (7 + c) + y / (11 + 2 * c))
                      for c in range(3)], -1)
  picture += rng.normal(0, 25, picture.shape)
  picture = np.clip(picture, 0, 255).astype(np.uint8)
  if grayscale:
    picture = picture[..., :1]
  return tf.io.encode_jpeg(picture, quality=85, chroma_downsampling=True)


# (height, width): stored frames (short side 256: only the window is
# decoded), portrait, square, and frames that need the resize first.
JPEG_SIZES = [(256, 341), (256, 455), (455, 256), (256, 256), (240, 320),
              (300, 533)]


@pytest.mark.parametrize("height, width", JPEG_SIZES)
def test_jpeg_preprocessing_equals_decode_then_preprocess(height, width):
  jpeg = _jpeg(height, width, seed=height + width)
  frame = tf.io.decode_jpeg(jpeg, channels=3)
  for k in range(6):
    seed = SEED + k
    np.testing.assert_array_equal(
        image_ops.preprocess_jpeg_for_train(jpeg, seed).numpy(),
        image_ops.preprocess_for_train(frame, seed).numpy())
  np.testing.assert_array_equal(
      image_ops.preprocess_jpeg_for_eval(jpeg).numpy(),
      image_ops.preprocess_for_eval(frame).numpy())


def test_jpeg_preprocessing_in_dataset_map_and_grayscale():
  jpegs = [_jpeg(256, 341, seed=1), _jpeg(256, 300, seed=2, grayscale=True)]
  seeds = tf.constant([[1, 2], [3, 4]], tf.int64)
  mapped = tf.data.Dataset.from_tensor_slices((jpegs, seeds)).map(
      lambda j, s: (image_ops.preprocess_jpeg_for_train(j, s),
                    image_ops.preprocess_jpeg_for_eval(j)))
  for (train, evaluation), jpeg, seed in zip(mapped, jpegs, seeds):
    frame = tf.io.decode_jpeg(jpeg, channels=3)
    assert train.shape == evaluation.shape == (224, 224, 3)
    np.testing.assert_array_equal(
        train.numpy(), image_ops.preprocess_for_train(frame, seed).numpy())
    np.testing.assert_array_equal(
        evaluation.numpy(), image_ops.preprocess_for_eval(frame).numpy())


def test_decode_jpeg_window_is_the_crop_of_a_full_decode():
  jpeg = _jpeg(256, 455, seed=3)
  frame = tf.io.decode_jpeg(jpeg, channels=3).numpy()
  rng = np.random.default_rng(0)
  # Windows at the borders and at odd (chroma-unaligned) offsets.
  windows = [(0, 0), (32, 231), (1, 1), (17, 99)] + [
      tuple(rng.integers(0, (33, 232))) for _ in range(8)]
  for top, left in windows:
    np.testing.assert_array_equal(
        image_ops.decode_jpeg_window(jpeg, top, left, 224).numpy(),
        frame[top:top + 224, left:left + 224])
  # The window of a seed is the one stateless_random_crop takes.
  for k in range(5):
    top, left = image_ops.random_crop_offset(256, 455, 224, SEED + k).numpy()
    np.testing.assert_array_equal(
        tf.image.stateless_random_crop(frame, [224, 224, 3], SEED + k).numpy(),
        frame[top:top + 224, left:left + 224])
