"""The Embedder on arrays: window arithmetic, timestamps, both model sources."""

import math
import warnings

import numpy as np
import pytest
import tensorflow as tf

from l3_tf.data import audio_frontend
from l3_tf.data import audio_params as audio_params_lib
from l3_tf.data import image_ops
from l3_tf.model import networks as model_lib
from l3_tf.serving import embed
from l3_tf.serving import embed_inputs
from tests import testing

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


def _brute_force_starts(num_samples: int, hop: int, center: bool) -> list:
  """Windows one after another until every sample is inside one."""
  first = -RATE // 2 if center else 0
  covered = np.zeros(num_samples, bool)
  starts = []
  while not covered.all():
    start = first + len(starts) * hop
    covered[max(0, start):max(0, start + RATE)] = True
    starts.append(start)
  return starts


def _lengths(hop: int, center: bool) -> list[int]:
  """Lengths around every whole number of hops after window 0, and others."""
  end_of_first = RATE // 2 if center else RATE
  around = [end_of_first + m * hop + d for m in range(4) for d in (-1, 0, 1)]
  rng = np.random.default_rng(hop)
  return sorted({1, 2, 1000, 23999, 24000, 24001, 47999, 48000, 48001,
                 *around, *rng.integers(1, 4 * RATE, 12).tolist()})


@pytest.mark.parametrize("hop_seconds", [0.1, 0.25, 0.5, 1.0, 1 / 30, 0.0371,
                                         0.9999])
@pytest.mark.parametrize("center", [True, False])
def test_windows_cover_every_sample_like_brute_force(hop_seconds, center):
  hop = int(round(hop_seconds * RATE))
  pad = RATE // 2 if center else 0
  for num_samples in _lengths(hop, center):
    starts = embed_inputs.window_starts(num_samples, hop_seconds, center)
    expected = _brute_force_starts(num_samples, hop, center)
    np.testing.assert_array_equal(starts, expected, err_msg=str(num_samples))
    # The closed form of the module docstring.
    assert starts.size == 1 + max(
        0, math.ceil((num_samples + pad - RATE) / hop)), num_samples
    # No window lies wholly after the recording; the last one reaches it.
    assert starts[-1] < num_samples <= starts[-1] + RATE
    # Timestamps keep their meaning: window centres, k * hop (+0.5 s); float64
    # of values < 9 s through a few operations: ~1e-15, well within 1e-12.
    np.testing.assert_allclose(
        embed_inputs.window_timestamps(starts),
        (0.0 if center else 0.5) + np.arange(starts.size) * hop / RATE,
        atol=1e-12)
    # The transfer protocol's windows: those that end inside the recording.
    inside = embed_inputs.window_starts(num_samples, hop_seconds, center,
                                 cover_end=False)
    kept = [s for s in expected if s + RATE <= num_samples] or expected[:1]
    np.testing.assert_array_equal(inside, kept, err_msg=str(num_samples))


def test_timestamp_is_the_centre_of_its_window():
  ramp = np.arange(1, 3 * RATE + 1, dtype=np.float32)  # sample n holds n + 1
  for center in (True, False):
    starts = embed_inputs.window_starts(ramp.size, 0.1, center)
    windows = embed_inputs.extract_windows(ramp, starts, RATE)  # [T, 48000]
    timestamps = embed_inputs.window_timestamps(starts)
    # The window's middle sample is the sample at the timestamp.
    np.testing.assert_array_equal(windows[:, RATE // 2] - 1,
                                  np.round(timestamps * RATE))
    if center:  # the first window is half zeros, half recording
      assert not windows[0, :RATE // 2].any()
      assert windows[0, RATE // 2] == 1
  np.testing.assert_array_equal(
      embed_inputs.starts_for_centres(embed_inputs.window_timestamps(starts)), starts)


def test_embed_audio_matches_the_keras_audio_tower(embedders, tiny_export,
                                                   tiny_bound):
  embedder, _ = embedders
  waveform = _sound(2.37)
  result = embedder.embed_audio(waveform, RATE, hop_seconds=0.25)
  # 2.37 s centred: windows until one ends at or after 2.37 s:
  # 0.5 s + k * 0.25 s >= 2.37 s first at k = 8, so k = 0..8.
  assert result.embedding.shape == (9, 192)
  np.testing.assert_allclose(result.timestamps, np.arange(9) * 0.25)
  windows = embed_inputs.extract_windows(
      waveform, embed_inputs.starts_for_centres(result.timestamps), RATE)
  _, audio, _ = model_lib.towers_of(tiny_export.avc)
  expected = audio(audio_frontend.log_spectrogram(tf.constant(windows)),
                   training=False)["embedding_6144"].numpy()
  testing.assert_close_normwise(result.embedding, expected, tiny_bound,
                                what="Embedder vs Keras audio tower")


def test_saved_model_and_workdir_embed_alike(embedders, tiny_export,
                                             tiny_bound):
  from_export, from_workdir = embedders
  assert from_export.embedding_sizes == from_workdir.embedding_sizes
  assert from_export.audio_params == from_workdir.audio_params
  waveform = _sound(1.5, seed=1)
  for size in (512, 6144):
    a = from_export.embed_audio(waveform, RATE, embedding=size)
    b = from_workdir.embed_audio(waveform, RATE, embedding=size)
    testing.assert_close_normwise(a.embedding, b.embedding, tiny_bound,
                                  what=f"audio embedding_{size}")
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
  images = np.random.default_rng(0).integers(0, 256, (3, 100, 150, 3),
                                             dtype=np.uint8)
  for size in (512, 8192):
    testing.assert_close_normwise(
        from_export.embed_images(images, embedding=size),
        from_workdir.embed_images(images, embedding=size), tiny_bound,
        what=f"image embedding_{size}")
  window = _sound(1.0, seed=2)
  testing.assert_probability_close(
      from_export.score(images[0], window),
      from_workdir.score(images[0], window), tiny_bound,
      testing.pair_logits(from_workdir, tiny_export.avc, images[0], window))


def test_channels_are_averaged_and_batch_size_does_not_matter(embedders,
                                                              tiny_bound):
  embedder, _ = embedders
  left, right = _sound(1.6, seed=0), _sound(1.6, seed=1)
  stereo = embedder.embed_audio(np.stack([left, right], axis=1), RATE,
                                batch_size=2)
  mono = embedder.embed_audio((left + right) / 2, RATE, batch_size=5)
  # The two means round differently (u relative per sample): one stage
  # more than the path's 8 layers, within the bound's 18.
  testing.assert_close_normwise(stereo.embedding, mono.embedding, tiny_bound,
                                what="stereo vs its mono mix")
  assert stereo.embedding.shape[0] == 12  # centred, 1.6 s, hop 0.1: 0..1.1 s


def test_embed_images_of_mixed_sizes_and_channels(embedders, tiny_export,
                                                  tiny_bound):
  embedder, _ = embedders
  rng = np.random.default_rng(3)
  a = rng.integers(0, 256, (120, 90, 3), dtype=np.uint8)
  b = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
  gray = rng.integers(0, 256, (64, 64, 1), dtype=np.uint8)
  rgba = np.concatenate([a, np.full((120, 90, 1), 7, np.uint8)], axis=-1)
  results = embedder.embed_images([a, b, b, gray, rgba], batch_size=2)
  assert [r.shape for r in results] == [(1, 256)] * 5
  batch = np.concatenate(results)
  vision, _, _ = model_lib.towers_of(tiny_export.avc)
  for i, image in enumerate([a, b, b, np.repeat(gray, 3, -1), a]):
    expected = vision(image_ops.preprocess_for_eval(tf.constant(image))[None],
                      training=False)["embedding_8192"].numpy()[0]
    testing.assert_close_normwise(batch[i], expected, tiny_bound,
                                  what=f"image {i}")


def test_score_is_the_keras_probability(embedders, tiny_export, tiny_bound):
  embedder, _ = embedders
  rng = np.random.default_rng(4)
  image = rng.integers(0, 256, (2, 200, 260, 3), dtype=np.uint8)
  waveform = np.stack([_sound(1.0, seed=3), _sound(1.0, seed=4)])
  probability = embedder.score(image, waveform)
  logits = tiny_export.avc({
      "image": image_ops.preprocess_for_eval(tf.constant(image)),
      "spectrogram": audio_frontend.log_spectrogram(tf.constant(waveform))},
      training=False)
  testing.assert_probability_close(probability, tf.nn.softmax(logits)[:, 1],
                                   tiny_bound, logits)
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


def test_a_list_of_recordings_gives_the_list_of_one_by_one_results(
    embedders, tiny_bound):
  embedder, _ = embedders
  recordings = [_sound(1.52, seed=1), _sound(0.4, seed=2),
                np.stack([_sound(2.05, seed=3), _sound(2.05, seed=4)], 1),
                _sound(1.0, seed=5, rate=22050)]
  rates = [RATE, RATE, RATE, 22050]
  for center in (True, False):
    # batch_size 3 cuts batches across recordings.
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", embed.ShortInputWarning)
      together = embedder.embed_audio(recordings, rates, hop_seconds=0.5,
                                      center=center, batch_size=3)
      alone = [embedder.embed_audio(r, rate, hop_seconds=0.5, center=center)
               for r, rate in zip(recordings, rates)]
    assert isinstance(together, list) and len(together) == len(recordings)
    for got, want in zip(together, alone):
      assert isinstance(got, embed.Embeddings)
      testing.assert_close_normwise(got.embedding, want.embedding, tiny_bound,
                                    what="a recording of the list")
      np.testing.assert_array_equal(got.timestamps, want.timestamps)
  # One rate for every recording of a list; a tuple is a list too.
  pair = embedder.embed_audio((recordings[0], recordings[0]), RATE,
                              hop_seconds=0.5, center=False)
  for got in pair:
    testing.assert_close_normwise(got.embedding, alone[0].embedding,
                                  tiny_bound, what="a tuple's recording")
  assert embedder.embed_audio([], RATE) == []


def test_images_list_in_list_out_equal_to_one_by_one(embedders, tiny_bound):
  embedder, _ = embedders
  rng = np.random.default_rng(6)
  inputs = [rng.integers(0, 256, (50, 70, 3), dtype=np.uint8),
            rng.integers(0, 256, (3, 50, 70, 3), dtype=np.uint8),
            rng.integers(0, 256, (90, 60, 1), dtype=np.uint8)]
  together = embedder.embed_images(inputs, batch_size=2, embedding=512)
  for got, item in zip(together, inputs):
    want = embedder.embed_images(item, embedding=512)
    assert got.shape == want.shape == (item.shape[0] if item.ndim == 4 else 1,
                                       16)
    testing.assert_close_normwise(got, want, tiny_bound, what="an image item")


def test_the_tail_of_a_recording_is_embedded(embedders, tiny_bound):
  """A click in the last 20 ms changes the last embedding, and only it."""
  embedder, _ = embedders
  quiet = _sound(1.52, seed=8)
  click = quiet.copy()
  click[-960:] += 0.9 * np.sign(np.sin(np.arange(960) / 3.0))
  for center, count in ((True, 4), (False, 3)):
    a = embedder.embed_audio(quiet, RATE, hop_seconds=0.5, center=center)
    b = embedder.embed_audio(click, RATE, hop_seconds=0.5, center=center)
    assert a.embedding.shape[0] == count
    np.testing.assert_allclose(a.timestamps[-1], 1.5)
    testing.assert_close_normwise(a.embedding[:-1], b.embedding[:-1],
                                  tiny_bound, what="windows before the click")
    # ... and the last one moves beyond round-off.
    with pytest.raises(AssertionError, match="row 0 differs"):
      testing.assert_close_normwise(a.embedding[-1:], b.embedding[-1:],
                                    tiny_bound, what="the clicked window")


@pytest.mark.parametrize("call, match", [
    (lambda e: e.embed_audio([_sound(1.0), [_sound(1.0)]], RATE),
     r"waveform\[1\] is a list"),
    (lambda e: e.embed_audio([_sound(1.0), np.zeros(10, np.int16)], RATE),
     r"waveform\[1\] dtype=int16"),
    (lambda e: e.embed_audio([0.1, 0.2], RATE), r"waveform\[0\] is a float"),
    (lambda e: e.embed_audio([_sound(1.0)] * 2, [RATE] * 3),
     "sample_rate_hz has 3 rates for 2 recordings"),
    (lambda e: e.embed_audio(_sound(1.0), [RATE]),
     "sample_rate_hz has 1 rates for one recording"),
    (lambda e: e.embed_audio([_sound(1.0)] * 2, [RATE, 0]),
     r"sample_rate_hz\[1\]=0"),
    (lambda e: e.embed_audio(_sound(1.0), 44100.5), "sample_rate_hz=44100.5"),
    (lambda e: e.embed_audio(np.zeros(0, np.float32), RATE),
     "waveform is empty"),
    (lambda e: e.embed_audio([_sound(1.0), np.zeros((0, 2), np.float32)],
                             RATE), r"waveform\[1\] is empty"),
    (lambda e: e.embed_audio(np.zeros((2, 48000), np.float32), RATE),
     r"waveform shape=\(2, 48000\) has more channels than samples"),
    (lambda e: e.embed_audio(_sound(1.0), RATE, center="invalid"),
     r"center='invalid'; expected one of \[True, False\]"),
    (lambda e: e.embed_audio(_sound(1.0), RATE, center=1),
     r"center=1; expected one of \[True, False\]"),
    (lambda e: e.embed_audio(_sound(1.0), RATE, embedding="big"),
     r"embedding='big' but the audio embeddings are \[512, 6144, 'transfer'\]"),
    (lambda e: e.embed_audio(_sound(1.0), RATE, embedding=8192),
     "embedding=8192 but the audio embeddings are"),
    (lambda e: e.embed_audio(_sound(1.0), RATE, hop_seconds=0),
     r"hop_seconds=0; expected a number of seconds in \(0, 1\]"),
    (lambda e: e.embed_audio(_sound(1.0), RATE, hop_seconds=2.0),
     "hop_seconds=2.0 is longer than the 1 s window"),
    (lambda e: e.embed_audio(_sound(1.0), RATE, hop_seconds="0.1"),
     "hop_seconds='0.1'"),
    (lambda e: e.embed_audio(_sound(1.0), RATE, batch_size=0),
     "batch_size=0; expected an int >= 1"),
    (lambda e: e.embed_audio(_sound(1.0), RATE, batch_size=2.5),
     "batch_size=2.5; expected an int >= 1"),
    (lambda e: e.embed_images(np.zeros((0, 0, 3), np.uint8)),
     r"images shape=\(0, 0, 3\) is empty"),
    (lambda e: e.embed_images([np.zeros((4, 4, 3), np.uint8),
                               np.zeros((5, 0, 3), np.uint8)]),
     r"images\[1\] shape=\(5, 0, 3\) is empty"),
    (lambda e: e.embed_images([np.zeros((4, 4, 3), np.float32)]),
     r"images\[0\] dtype=float32: expected uint8"),
    (lambda e: e.embed_images(np.zeros((4, 4, 3), np.uint8), embedding=6144),
     "embedding=6144 but the image embeddings are"),
    (lambda e: e.embed_images(np.zeros((4, 4, 2), np.uint8)),
     "expected 1, 3 or 4 channels"),
    (lambda e: e.embed_images("cat.png"), "images is a str"),
])
def test_every_bad_argument_is_rejected_by_name(embedders, call, match):
  with pytest.raises(ValueError, match=match):
    call(embedders[0])


def test_suspicious_inputs_warn_with_filterable_classes(embedders):
  embedder, _ = embedders
  cases = [
      (lambda: embedder.embed_audio(_sound(0.3), RATE),
       embed.ShortInputWarning, "waveform is 0.300 s, shorter than one"),
      (lambda: embedder.embed_audio([_sound(1.0), np.zeros(RATE, np.float32)],
                                    RATE),
       embed.SilentInputWarning, r"waveform\[1\] is silent"),
      (lambda: embedder.embed_images(np.full((30, 40, 3), 128, np.uint8)),
       embed.ConstantImageWarning, "images is a single colour"),
  ]
  for call, category, match in cases:
    assert issubclass(category, embed.EmbedWarning)
    with pytest.warns(category, match=match):
      result = call()
    # ... and the result is still valid.
    first = result[0] if isinstance(result, list) else result
    array = first.embedding if isinstance(first, embed.Embeddings) else first
    assert array.shape[0] >= 1 and np.all(np.isfinite(array))
    with warnings.catch_warnings():
      warnings.simplefilter("error")  # any other warning would fail here
      warnings.filterwarnings("ignore", category=embed.EmbedWarning)
      call()
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # a normal input does not warn
    embedder.embed_audio(_sound(1.2), RATE)
    embedder.embed_images(np.random.default_rng(0).integers(
        0, 256, (8, 8, 3), dtype=np.uint8))
