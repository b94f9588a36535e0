"""The export and l3-score given hostile inputs (issue 14).

Before: a NaN sample gave a normal-looking embedding and probability.
"""

import numpy as np
import pytest
import tensorflow as tf

from l3_tf.serving import embed as embed_lib
from l3_tf.serving import score as score_lib
from tests import testing


@pytest.fixture(scope="module")
def signatures(tiny_export):
  return tf.saved_model.load(tiny_export.saved_model).signatures


def _waveforms(rows=3, seed=0):
  rng = np.random.default_rng(seed)
  return rng.uniform(-0.5, 0.5, (rows, 48000)).astype(np.float32)


def test_non_finite_samples_give_nan_rows_only(signatures, tiny_export,
                                               tiny_bound):
  clean = _waveforms()
  hostile = clean.copy()
  hostile[1, 1000] = np.nan
  hostile[2, 47999] = np.inf
  images = np.zeros((3, 64, 80, 3), np.uint8)  # all-zero images are valid
  image_512 = signatures["image_embedding"](image=tf.constant(images))[
      "embedding_512"]
  audio_512 = signatures["audio_embedding"](waveform=tf.constant(clean))[
      "embedding_512"]
  logits = testing.head_logits(tiny_export.avc, image_512, audio_512)
  for name, kwargs in (("audio_embedding", {}), ("avc_score",
                                                  {"image": images})):
    good = signatures[name](waveform=tf.constant(clean), **kwargs)
    bad = signatures[name](waveform=tf.constant(hostile), **kwargs)
    for key, value in bad.items():
      value = value.numpy()
      assert np.isnan(value[1]).all() and np.isnan(value[2]).all(), key
      # Row 0 in another batch: within the round-off of two evaluations.
      if key == "probability":
        testing.assert_probability_close(value[0], good[key].numpy()[0],
                                         tiny_bound, logits[0], what=key)
      else:
        testing.assert_close_normwise(value[0], good[key].numpy()[0],
                                      tiny_bound, what=f"{name} {key}")
      assert np.isfinite(good[key].numpy()).all(), key


def test_zero_image_and_silence_are_ordinary_inputs(signatures):
  out = signatures["image_embedding"](image=tf.zeros([2, 224, 224, 3],
                                                     tf.uint8))
  assert all(np.isfinite(v.numpy()).all() for v in out.values())
  out = signatures["avc_score"](image=tf.zeros([1, 224, 224, 3], tf.uint8),
                                waveform=tf.zeros([1, 48000]))
  assert 0.0 <= float(out["probability"][0]) <= 1.0


@pytest.mark.parametrize("call", [
    lambda s: s["audio_embedding"](waveform=tf.zeros([1, 48000], tf.float64)),
    lambda s: s["audio_embedding"](waveform=tf.zeros([1, 4800])),
    lambda s: s["image_embedding"](image=tf.zeros([1, 224, 224, 3])),
    lambda s: s["image_embedding"](image=tf.zeros([1, 224, 224, 4], tf.uint8)),
    lambda s: s["avc_score"](image=tf.zeros([2, 224, 224, 3], tf.uint8),
                             waveform=tf.zeros([3, 48000])),
], ids=["float64", "short", "float_image", "four_channels", "batches_differ"])
def test_wrong_shape_or_dtype_raises_and_the_model_stays_usable(signatures,
                                                                call):
  with pytest.raises((tf.errors.InvalidArgumentError, ValueError, TypeError)):
    call(signatures)
  out = signatures["audio_embedding"](waveform=tf.constant(_waveforms(1)))
  assert np.isfinite(out["embedding_512"].numpy()).all()


def test_score_refuses_a_window_with_nan(tiny_export):
  embedder = embed_lib.Embedder.load(tiny_export.saved_model)
  waveform = _waveforms(1)[0]
  pair = score_lib.Pair(np.zeros((32, 32, 3), np.uint8), waveform, 0.5,
                        "zeros.png", "sound.wav")
  assert 0.0 <= score_lib.score_pair(embedder, pair) <= 1.0
  waveform = waveform.copy()
  waveform[[3, 7]] = np.nan
  with pytest.raises(ValueError, match=r"'sound.wav'.* 2 NaN or infinite"):
    score_lib.score_pair(embedder, pair._replace(waveform=waveform))
