"""The Embedder on arrays: window arithmetic, timestamps, both model sources."""

import numpy as np
import pytest
import tensorflow as tf

from l3_tf import audio_frontend
from l3_tf import audio_params as audio_params_lib
from l3_tf import embed
from l3_tf import image_ops
from l3_tf import model as model_lib

RATE = 48000
PARAMS = audio_params_lib.DEFAULT


@pytest.fixture(scope="module")
def embedders(tiny_export):
  """The same model loaded from its SavedModel and from its workdir."""
  return (embed.Embedder.load(tiny_export.saved_model),
          embed.Embedder.load(tiny_export.workdir))


def _sound(seconds: float, seed: int = 0, rate: int = RATE) -> np.ndarray:
  rng = np.random.default_rng(seed)
  t = np.arange(int(round(seconds * rate))) / rate
  tone = np.sin(2 * np.pi * (300 + 400 * seed) * t) * (1 + np.sin(3 * t)) / 2
  return (0.4 * tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.mark.parametrize("num_samples", [0, 1000, 24000, 47999, 48000, 48001,
                                         52800, 100000, 240000])
@pytest.mark.parametrize("hop_seconds", [0.1, 0.25, 1.0, 1 / 30])
@pytest.mark.parametrize("center", [True, False])
def test_windows_are_those_that_end_inside_the_recording(num_samples,
                                                         hop_seconds, center):
  starts = embed.window_starts(num_samples, hop_seconds, center)
  hop = int(round(hop_seconds * RATE))
  first = -RATE // 2 if center else 0
  # Brute force: window k starts at first + k*hop and is kept while it ends
  # inside the recording; at least one window is always kept.
  expected = [first + k * hop for k in range(10 ** 4)
              if first + k * hop + RATE <= num_samples]
  expected = expected or [first]
  np.testing.assert_array_equal(starts, expected)
  # The closed form of the module docstring.
  pad = RATE // 2 if center else 0
  assert starts.size == max(1, 1 + (num_samples + pad - RATE) // hop)
  timestamps = embed.window_timestamps(starts)
  np.testing.assert_allclose(
      timestamps, (0.0 if center else 0.5) + np.arange(starts.size) * hop / RATE,
      atol=1e-12)


def test_timestamp_is_the_centre_of_its_window():
  ramp = np.arange(1, 3 * RATE + 1, dtype=np.float32)  # sample n holds n + 1
  for center in (True, False):
    starts = embed.window_starts(ramp.size, 0.1, center)
    windows = embed.extract_windows(ramp, starts, RATE)  # [T, 48000]
    timestamps = embed.window_timestamps(starts)
    # The window's middle sample is the sample at the timestamp.
    np.testing.assert_array_equal(windows[:, RATE // 2] - 1,
                                  np.round(timestamps * RATE))
    if center:  # the first window is half zeros, half recording
      assert not windows[0, :RATE // 2].any()
      assert windows[0, RATE // 2] == 1
  np.testing.assert_array_equal(
      embed.starts_for_centres(embed.window_timestamps(starts)), starts)


def test_embed_audio_matches_the_keras_audio_tower(embedders, tiny_export):
  embedder, _ = embedders
  waveform = _sound(2.37)
  result = embedder.embed_audio(waveform, RATE, hop_seconds=0.25)
  # 2.37 s centred: windows end at 0.5 s + k * 0.25 s <= 2.37 s: k = 0..7.
  assert result.embedding.shape == (8, 192)
  np.testing.assert_allclose(result.timestamps, np.arange(8) * 0.25)
  windows = embed.extract_windows(
      waveform, embed.starts_for_centres(result.timestamps), RATE)
  _, audio, _ = model_lib.towers_of(tiny_export.avc)
  expected = audio(audio_frontend.log_spectrogram(tf.constant(windows)),
                   training=False)["embedding_6144"].numpy()
  np.testing.assert_allclose(result.embedding, expected, atol=1e-5)


def test_saved_model_and_workdir_embed_alike(embedders):
  from_export, from_workdir = embedders
  assert from_export.embedding_sizes == from_workdir.embedding_sizes
  assert from_export.audio_params == from_workdir.audio_params
  waveform = _sound(1.5, seed=1)
  for size in (512, 6144):
    a = from_export.embed_audio(waveform, RATE, embedding=size)
    b = from_workdir.embed_audio(waveform, RATE, embedding=size)
    np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-5)
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
  images = np.random.default_rng(0).integers(0, 256, (3, 100, 150, 3),
                                             dtype=np.uint8)
  for size in (512, 8192):
    np.testing.assert_allclose(
        from_export.embed_images(images, embedding=size),
        from_workdir.embed_images(images, embedding=size), atol=1e-5)
  window = _sound(1.0, seed=2)
  np.testing.assert_allclose(from_export.score(images[0], window),
                             from_workdir.score(images[0], window), atol=1e-6)


def test_channels_are_averaged_and_batch_size_does_not_matter(embedders):
  embedder, _ = embedders
  left, right = _sound(1.6, seed=0), _sound(1.6, seed=1)
  stereo = embedder.embed_audio(np.stack([left, right], axis=1), RATE,
                                batch_size=2)
  mono = embedder.embed_audio((left + right) / 2, RATE, batch_size=5)
  np.testing.assert_allclose(stereo.embedding, mono.embedding, atol=1e-5)
  assert stereo.embedding.shape[0] == 12  # centred, 1.6 s, hop 0.1: 0..1.1 s


def test_embed_images_of_mixed_sizes_and_channels(embedders, tiny_export):
  embedder, _ = embedders
  rng = np.random.default_rng(3)
  a = rng.integers(0, 256, (120, 90, 3), dtype=np.uint8)
  b = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
  gray = rng.integers(0, 256, (64, 64, 1), dtype=np.uint8)
  rgba = np.concatenate([a, np.full((120, 90, 1), 7, np.uint8)], axis=-1)
  batch = embedder.embed_images([a, b, b, gray, rgba], batch_size=2)
  assert batch.shape == (5, 256)
  vision, _, _ = model_lib.towers_of(tiny_export.avc)
  for i, image in enumerate([a, b, b, np.repeat(gray, 3, -1), a]):
    expected = vision(image_ops.preprocess_for_eval(tf.constant(image))[None],
                      training=False)["embedding_8192"].numpy()[0]
    np.testing.assert_allclose(batch[i], expected, atol=1e-5)


def test_score_is_the_keras_probability(embedders, tiny_export):
  embedder, _ = embedders
  rng = np.random.default_rng(4)
  image = rng.integers(0, 256, (2, 200, 260, 3), dtype=np.uint8)
  waveform = np.stack([_sound(1.0, seed=3), _sound(1.0, seed=4)])
  probability = embedder.score(image, waveform)
  logits = tiny_export.avc({
      "image": image_ops.preprocess_for_eval(tf.constant(image)),
      "spectrogram": audio_frontend.log_spectrogram(tf.constant(waveform))},
      training=False)
  np.testing.assert_allclose(probability, tf.nn.softmax(logits)[:, 1],
                             atol=1e-6)
  assert np.all((0 <= probability) & (probability <= 1))


def test_bad_inputs_are_named(embedders, tmp_path):
  embedder, _ = embedders
  with pytest.raises(ValueError, match="embedding=8192 but the audio embeddings are"):
    embedder.embed_audio(_sound(1.0), RATE, embedding=8192)
  with pytest.raises(ValueError, match="dtype=int16"):
    embedder.embed_audio(np.zeros(48000, np.int16), RATE)
  with pytest.raises(ValueError, match="hop_seconds=0"):
    embedder.embed_audio(_sound(1.0), RATE, hop_seconds=0)
  with pytest.raises(ValueError, match="dtype=float32: expected uint8"):
    embedder.embed_images(np.zeros((1, 8, 8, 3), np.float32))
  with pytest.raises(ValueError, match=r"waveform shape=\(1000,\)"):
    embedder.score(np.zeros((8, 8, 3), np.uint8), np.zeros(1000, np.float32))
  with pytest.raises(FileNotFoundError, match="neither an l3_tf SavedModel"):
    embed.Embedder.load(str(tmp_path))
