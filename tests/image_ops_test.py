"""Each image op: its contract, and the same result eagerly and in Dataset.map."""

import numpy as np
import pytest
import tensorflow as tf

from l3_tf import image_ops

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


@pytest.mark.parametrize("name", sorted(OPS))
def test_eager_equals_dataset_map(name):
  op = OPS[name]
  image = _image(180, 300)
  eager = op(tf.constant(image)).numpy()
  mapped = next(iter(tf.data.Dataset.from_tensors(image).map(op))).numpy()
  assert eager.shape == mapped.shape
  np.testing.assert_allclose(eager, mapped, atol=1e-5)


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
  np.testing.assert_allclose(_float(rgba).numpy(), rgba[..., :3] / 255.0,
                             atol=1e-6)
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
    assert np.ptp(out) < 1e-6  # one offset for every pixel
    assert abs(out[0, 0, 0] - 0.5) <= 0.125 + 1e-6


def test_saturation_keeps_gray_gray():
  gray = tf.fill((8, 8, 3), 0.3)
  out = image_ops.random_saturation(gray, (0.5, 1.5), SEED).numpy()
  np.testing.assert_allclose(out, 0.3, atol=1e-6)


def test_output_range_is_symmetric():
  out = image_ops.preprocess_for_train(_image(), SEED).numpy()
  assert out.min() >= -1 and out.max() <= 1
  assert out.shape == (224, 224, 3)
