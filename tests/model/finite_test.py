"""The one check of weights and outputs (`l3_tf.finite`, issue 26)."""

import keras
import numpy as np
import pytest

from l3_tf.model import finite
from l3_tf.model import networks as model_lib
from tests import testing


def test_first_nonfinite_is_the_first_in_c_order():
  values = np.zeros((3, 4), np.float32)
  assert finite.first_nonfinite(values) is None
  values[2, 0] = np.inf
  values[1, 3] = np.nan
  assert finite.first_nonfinite(values) == (1, 3)
  assert finite.first_nonfinite(np.arange(4)) is None  # ints are finite


def test_outputs_name_source_output_and_place():
  out = np.ones((4, 2), np.float32)
  assert finite.check_outputs(out, "logits", "ckpt-3") is out
  out[2, 1] = np.nan
  with pytest.raises(finite.NonFiniteError,
                     match=r"^ckpt-3: logits\[2, 1\] is nan \(1 of 8 values"
                     ) as caught:
    finite.check_outputs(out, "logits", "ckpt-3")
  assert isinstance(caught.value, ValueError)  # the binaries exit 1
  assert caught.value.source == "ckpt-3" and caught.value.what == "logits"


def test_an_output_at_the_float32_limit_is_an_overflow():
  """Max pooling of NaN activations gives -3.4e38, finite but garbage
  (seen from an export whose first audio convolution overflowed)."""
  out = np.ones((2, 3), np.float32)
  out[1, 2] = -np.finfo(np.float32).max
  with pytest.raises(finite.NonFiniteError,
                     match=r"embedding\[1, 2\] is -3.40\d*e\+38 \(1 of 6 "
                     "values are NaN, inf or at the float32 limit"):
    finite.check_outputs(out, "embedding", "export")
  # Weights are judged by NaN / inf only.
  finite.check_variables([("w", out)], "export")


def test_rows_of_non_finite_inputs_may_be_nan():
  """A NaN sample gives a NaN row by the export's contract (not the
  model's fault); any other non-finite row still fails."""
  out = np.ones((3, 5), np.float32)
  out[1] = np.nan
  allowed = np.array([False, True, False])
  finite.check_outputs(out, "embedding", "export", allowed_rows=allowed)
  out[2, 4] = -np.inf
  with pytest.raises(finite.NonFiniteError, match=r"embedding\[2, 4\] is -inf"):
    finite.check_outputs(out, "embedding", "export", allowed_rows=allowed)


def test_variables_are_named_through_their_tower():
  config = testing.tiny_config()
  avc = model_lib.avc_network(config.model, config.image, config.audio)
  finite.check_model(avc, "fresh")  # a new network computes finite logits
  kernel, = [v for v in avc.get_layer("audio_tower").variables
             if v.path == "conv1_1/kernel"]
  value = kernel.numpy()
  value[0, 1, 0, 1] = np.inf
  kernel.assign(value)
  with pytest.raises(finite.NonFiniteError,
                     match=r"^ckpt-9: variable audio_tower/conv1_1/kernel "
                     r"holds NaN or inf \(1 of \d+ values, the first inf at "
                     r"\[0, 1, 0, 1\]\)"):
    finite.check_model(avc, "ckpt-9")


def test_finite_weights_that_overflow_fail_on_the_probe_pair():
  """Finite but huge weights (what one step at lr 1e30 leaves): the probe
  pair's embeddings are NaN."""
  config = testing.tiny_config()
  avc = model_lib.avc_network(config.model, config.image, config.audio)
  kernel, = [v for v in avc.get_layer("audio_tower").variables
             if v.path == "conv1_1/kernel"]
  kernel.assign(np.full(kernel.shape, -1e38, np.float32))
  finite.check_variables(finite.named_variables(avc), "huge")  # finite
  with pytest.raises(finite.NonFiniteError,
                     match=r"^huge: the probe pair's audio_tower "
                     r"embedding_512\[0, 0\] is nan"):
    finite.check_model(avc, "huge")


def _spectrogram_classifier(name="spectrogram"):
  """spectrogram [b, 257, 199, 1] -> mean -> Dense(3) logits."""
  inputs = keras.Input((257, 199, 1), name=name)
  pooled = keras.layers.GlobalAveragePooling2D()(inputs)  # [b, 1]
  logits = keras.layers.Dense(3, name="logits")(pooled)  # [b, 3]
  return keras.Model(inputs, logits, name="tiny_classifier")


def test_check_classifier_names_the_variable_the_output_and_bad_inputs():
  """The finite check of the loop's non-AVC tasks (the baselines'
  classifiers, a fine-tuned tower): weights, then the probe's outputs."""
  model = _spectrogram_classifier()
  finite.check_classifier(model, "fresh")  # finite: no error
  kernel, bias = model.get_layer("logits").get_weights()
  kernel[0, 1] = np.nan
  model.get_layer("logits").set_weights([kernel, bias])
  with pytest.raises(finite.NonFiniteError, match=r"logits/kernel holds NaN"):
    finite.check_classifier(model, "ckpt-1")
  # Finite weights whose output overflows: zero kernel, bias 3e38 + 3e38
  # is +inf in float32 (no rounding order can keep it finite).
  kernel[:] = 0.0
  model.get_layer("logits").set_weights([kernel, np.full(3, 3e38, np.float32)])
  second = keras.layers.Add()([model.output, model.output])
  doubled = keras.Model(model.input, second, name="doubled")
  with pytest.raises(finite.NonFiniteError,
                     match=r"the probe input's doubled output"):
    finite.check_classifier(doubled, "ckpt-2")
  with pytest.raises(ValueError, match=r"inputs \['waveform'\]"):
    finite.check_classifier(_spectrogram_classifier("waveform"), "ckpt-3")
