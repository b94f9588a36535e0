"""LiteRT, ONNX and .keras exports, TFSMLayer, and `--check`, on a tiny model.

Parity with the SavedModel is checked in a fresh process that imports only
numpy and the runtime (ai_edge_litert, onnxruntime): the files must be
self-contained. The ONNX tests skip, naming the reason, where the `export`
extra's onnx does not import (e.g. onnx >= 1.18 beside TF 2.16's ml_dtypes).
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from l3_tf.data import audio_frontend
from l3_tf.data import audio_reference
from l3_tf.serving import export as export_lib
from l3_tf.serving import export_check
from l3_tf.serving import export_formats
from tests import testing

ROOT = str(testing.REPO_ROOT)


def _onnx_missing() -> str | None:
  try:
    export_formats.require("tf2onnx")
    export_formats.require("onnxruntime")
  except export_formats.MissingExtraError as e:
    return str(e)
  return None


@pytest.fixture(scope="module")
def converted(tiny_export, fake_config, tmp_path_factory):
  """Every format of the tiny model in one directory (int8 calibrated on
  the fake video dataset's train split)."""
  out = str(tmp_path_factory.mktemp("converted"))
  calibration = export_formats.calibration_inputs(
      fake_config.data.dataset, fake_config.data.data_dir, "train",
      tiny_export.config, num_samples=8)
  paths = export_formats.convert_workdir(
      tiny_export.workdir, out, "litert",
      audio_inputs=("waveform", "spectrogram"),
      quantizations=("float32", "dynamic_int8", "int8"),
      calibration=calibration)
  paths += export_formats.convert_workdir(tiny_export.workdir, out, "keras")
  if _onnx_missing() is None:
    paths += export_formats.convert_workdir(
        tiny_export.workdir, out, "onnx",
        audio_inputs=("waveform", "spectrogram"))
  return {os.path.basename(p): p for p in paths}


def _inputs(config, batch=3):
  """Waveforms, their spectrograms, 256 x 256 images and their 224 crops
  (the SavedModel's own preprocessing of a 256 image is that crop)."""
  reference = export_lib.reference_inputs(config, batch)
  rng = np.random.default_rng(1)
  image_256 = rng.integers(0, 256, (batch, 256, 256, 3), dtype=np.uint8)
  import tensorflow as tf
  return {
      "waveform": reference["waveform"],
      "spectrogram": audio_frontend.log_spectrogram(
          tf.constant(reference["waveform"]), config.audio).numpy(),
      "image_256": image_256,
      "image": image_256[:, 16:240, 16:240],
  }


# Imports no TensorFlow and no l3_tf.
_RUN_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    files, inputs_path, outputs_path = json.loads(sys.argv[1]), *sys.argv[2:]
    assert "tensorflow" not in sys.modules
    inputs = np.load(inputs_path)
    outputs = {}
    for name, (kind, signature, input_name) in files.items():
      x = inputs[input_name]
      if kind == "litert":
        from ai_edge_litert import interpreter
        runner = interpreter.Interpreter(model_path=name).get_signature_runner(
            signature)
        got = runner(**{input_name: x})
      else:
        import onnxruntime
        session = onnxruntime.InferenceSession(
            name, providers=["CPUExecutionProvider"])
        got = dict(zip([o.name for o in session.get_outputs()],
                       session.run(None, {input_name: x})))
      for key, value in got.items():
        outputs[name + "|" + key] = value
    assert "tensorflow" not in sys.modules, "a runtime imported TensorFlow"
    np.savez(outputs_path, **outputs)
""")


def _run_fresh(files, inputs, tmp_path):
  np.savez(tmp_path / "inputs.npz", **inputs)
  subprocess.run([sys.executable, "-c", _RUN_SCRIPT, json.dumps(files),
                  str(tmp_path / "inputs.npz"), str(tmp_path / "out.npz")],
                 check=True, capture_output=True)
  got = {}
  for key, value in np.load(tmp_path / "out.npz").items():
    name, output = key.split("|")
    got.setdefault(name, {})[output] = value
  return got


def _saved_model_outputs(path, inputs):
  import tensorflow as tf
  signatures = tf.saved_model.load(path).signatures
  audio = signatures["audio_embedding"](waveform=tf.constant(
      inputs["waveform"]))
  image = signatures["image_embedding"](image=tf.constant(inputs["image_256"]))
  return ({k: v.numpy() for k, v in audio.items()},
          {k: v.numpy() for k, v in image.items()})


def test_portable_front_end_matches_tf_signal():
  import tensorflow as tf
  params = testing.tiny_config().audio
  t = np.arange(params.clip_samples) / params.sample_rate_hz
  waveforms = np.stack([
      np.zeros_like(t), 0.3 * np.random.default_rng(0).standard_normal(t.size),
      0.9 * np.sin(2 * np.pi * 1000 * t)]).astype(np.float32)
  portable = export_formats.portable_log_spectrogram(tf.constant(waveforms),
                                                     params).numpy()
  reference = audio_frontend.log_spectrogram(tf.constant(waveforms),
                                             params).numpy()
  exact = audio_reference.log_spectrogram(waveforms)  # float64
  assert portable.shape == reference.shape == exact.shape == (3, 257, 199, 1)
  # Each is float32 round-off away from the float64 truth, element by
  # element: the bounds are tight where the magnitude is large, loose (up
  # to ~1) where the noise's magnitude nears 0 and the log amplifies.
  for name, got, fft in (("portable", portable, False),
                         ("tf.signal", reference, True)):
    bound = testing.log_spectrogram_error_bound(waveforms, exact, params, fft)
    error = np.abs(got - exact)
    worst = np.unravel_index(np.argmax(error / bound), error.shape)
    assert np.all(error <= bound), (name, worst, error[worst], bound[worst])
  assert np.ptp(exact[2]) > 5  # the sine is not flat: a real check


def test_float32_litert_and_onnx_match_the_saved_model_in_a_fresh_process(
    tiny_export, converted, tmp_path, tiny_bound):
  """The converted towers compute what TensorFlow computes, within the
  round-off bound of two evaluations of the network (`tiny_bound`, normwise
  per example). The waveform files run the portable front end, whose
  distance from tf.signal's (the SavedModel's) is data-dependent where
  magnitudes near 0 and is bounded element by element in
  `test_portable_front_end_matches_tf_signal`: here they are compared with
  TensorFlow on that same front end, and the SavedModel's own front end
  with the portable one through the images and spectrograms' paths."""
  inputs = _inputs(tiny_export.config)
  files = {}
  for name, path in converted.items():
    if name.endswith("_float32.tflite"):
      files[path] = ("litert", "audio_embedding" if "audio" in name
                     else "image_embedding", _input_of(name))
    elif name.endswith(".onnx"):
      files[path] = ("onnx", None, _input_of(name))
  expected_kinds = {"litert": 3, "onnx": 0 if _onnx_missing() else 3}
  assert sorted(kind for kind, _, _ in files.values()) == sorted(
      ["litert"] * expected_kinds["litert"] + ["onnx"] * expected_kinds["onnx"])
  got = _run_fresh(files, inputs, tmp_path)
  audio, image = _saved_model_outputs(tiny_export.saved_model, inputs)
  import tensorflow as tf
  audio_tower = tiny_export.avc.get_layer("audio_tower")
  spectrogram_taps = audio_tower(tf.constant(inputs["spectrogram"]),
                                 training=False)
  portable_taps = audio_tower(export_formats.portable_log_spectrogram(
      tf.constant(inputs["waveform"]), tiny_export.config.audio),
                              training=False)
  for path, (_, _, input_name) in files.items():
    expected = {"waveform": {k: portable_taps[k].numpy()
                             for k in export_lib.AUDIO_TAPS},
                "image": image,
                "spectrogram": {k: spectrogram_taps[k].numpy()
                                for k in export_lib.AUDIO_TAPS}}[input_name]
    assert sorted(got[path]) == sorted(expected), path
    for key, value in expected.items():
      assert got[path][key].shape == value.shape, (path, key)
      rows = len(value)  # one example per row, whatever its shape
      testing.assert_close_normwise(
          got[path][key].reshape(rows, -1), value.reshape(rows, -1),
          tiny_bound, what=f"{os.path.basename(path)} {key}")
  # Not degenerate: embeddings vary across the batch.
  assert np.ptp(audio["embedding_6144"], axis=0).max() > 1e-3


def _input_of(name):
  return ("waveform" if "waveform" in name else
          "spectrogram" if "spectrogram" in name else "image")


def test_quantised_litert_is_smaller_int8_and_close_to_float32(converted):
  from ai_edge_litert import interpreter
  for stem in ("audio_tower_waveform", "audio_tower_spectrogram",
               "vision_tower"):
    sizes = {q: os.path.getsize(converted[f"{stem}_{q}.tflite"])
             for q in export_formats.QUANTIZATIONS}
    # int8 weights take a quarter of the float32 bytes; at 1/32 width the
    # flatbuffer's own bytes and the unquantised small tensors (< 1024
    # values) are a large part of the file, so only a part of that shows.
    assert sizes["dynamic_int8"] < 0.7 * sizes["float32"], (stem, sizes)
    assert sizes["int8"] < 0.7 * sizes["float32"], (stem, sizes)
    for quantization in ("dynamic_int8", "int8"):
      path = converted[f"{stem}_{quantization}.tflite"]
      details = interpreter.Interpreter(model_path=path).get_tensor_details()
      assert any(d["dtype"] == np.int8 for d in details), path
      result = export_check.check(path)
      assert result["quantization"] == quantization
      cosines = [o["min_cosine"] for o in result["outputs"].values()]
      errors = [o["max_error"] for o in result["outputs"].values()]
      assert min(cosines) > 0.8, (path, result)  # still the same embedding
      assert max(errors) > 1e-5, path  # and it did quantise


def test_litert_signatures_and_onnx_names_are_those_of_the_saved_model(
    converted):
  from ai_edge_litert import interpreter
  signatures = interpreter.Interpreter(
      model_path=converted["audio_tower_waveform_float32.tflite"]
  ).get_signature_list()
  assert signatures == {"audio_embedding": {
      "inputs": ["waveform"], "outputs": ["embedding_512", "embedding_6144"]}}
  signatures = interpreter.Interpreter(
      model_path=converted["vision_tower_int8.tflite"]).get_signature_list()
  assert signatures == {"image_embedding": {
      "inputs": ["image"], "outputs": ["embedding_512", "embedding_8192"]}}
  manifest = json.load(open(os.path.join(
      os.path.dirname(converted["vision_tower_int8.tflite"]),
      export_formats.MANIFEST)))
  entry = manifest["files"]["audio_tower_waveform_float32.tflite"]
  # 1/32 width: W4 = 16; audio tap 4 x 3 x 16.
  assert entry["outputs"] == {"embedding_512": 16, "embedding_6144": 192}
  assert entry["bytes"] == os.path.getsize(
      converted["audio_tower_waveform_float32.tflite"])
  if _onnx_missing():
    pytest.skip(_onnx_missing())
  import onnx
  model = onnx.load(converted["vision_tower.onnx"])
  assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")
          ] == [export_formats.ONNX_OPSET]
  assert [i.name for i in model.graph.input] == ["image"]
  assert sorted(o.name for o in model.graph.output) == [
      "embedding_512", "embedding_8192"]


# Imports no l3_tf: load_model must need no custom objects.
_KERAS_SCRIPT = textwrap.dedent("""
    import sys
    import keras
    import numpy as np
    folder, inputs_path, outputs_path = sys.argv[1:]
    inputs = np.load(inputs_path)
    outputs = {}
    for name, x in (("audio_tower", inputs["spectrogram"]),
                    ("vision_tower", inputs["image"])):
      model = keras.saving.load_model(f"{folder}/{name}.keras")
      for key, value in model(x, training=False).items():
        outputs[f"{name}/{key}"] = np.asarray(value)
    avc = keras.saving.load_model(f"{folder}/avc_network.keras")
    outputs["avc_network/logits"] = np.asarray(avc(
        {"image": inputs["image"], "spectrogram": inputs["spectrogram"]},
        training=False))
    np.savez(outputs_path, **outputs)
""")


@pytest.mark.slow  # a fresh TensorFlow process
def test_keras_files_reload_with_no_custom_objects_in_a_fresh_process(
    tiny_export, converted, tmp_path, tiny_bound):
  import tensorflow as tf
  inputs = _inputs(tiny_export.config)
  image = (inputs["image"].astype(np.float32) / 127.5 - 1).astype(np.float32)
  np.savez(tmp_path / "in.npz", spectrogram=inputs["spectrogram"], image=image)
  folder = os.path.dirname(converted["avc_network.keras"])
  subprocess.run([sys.executable, "-c", _KERAS_SCRIPT, folder,
                  str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                 check=True, capture_output=True)
  got = dict(np.load(tmp_path / "out.npz"))
  avc = tiny_export.avc
  expected = {"avc_network/logits": avc(
      {"image": tf.constant(image),
       "spectrogram": tf.constant(inputs["spectrogram"])}, training=False)}
  for tower, x in (("audio_tower", inputs["spectrogram"]),
                   ("vision_tower", image)):
    for key, value in avc.get_layer(tower)(tf.constant(x),
                                           training=False).items():
      expected[f"{tower}/{key}"] = value
  assert sorted(got) == sorted(expected)
  for key, value in expected.items():
    value = np.asarray(value)  # one example per row, whatever its shape
    testing.assert_close_normwise(got[key].reshape(len(value), -1),
                                  value.reshape(len(value), -1), tiny_bound,
                                  what=key)


def test_keras_audio_tower_fine_tunes(converted, tiny_export):
  """The reloaded tower trains: BN in place, gradients reach every conv."""
  import keras
  import tensorflow as tf
  tower = keras.saving.load_model(converted["audio_tower.keras"])
  inputs = _inputs(tiny_export.config)
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(tower(tf.constant(inputs["spectrogram"]),
                               training=True)["embedding_512"])
  grads = tape.gradient(loss, tower.trainable_variables)
  assert len(grads) == len(tower.trainable_variables) > 8
  assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0
             for g in grads)


def test_tfsmlayer_serves_each_signature_inside_a_keras_model(tiny_export,
                                                              tiny_bound):
  import keras
  import tensorflow as tf
  path = tiny_export.saved_model
  inputs = _inputs(tiny_export.config)
  loaded = tf.saved_model.load(path).signatures
  # A classifier on the audio embedding: the SavedModel as a frozen layer.
  waveform = keras.Input((48000,), name="waveform")
  audio = keras.layers.TFSMLayer(path, call_endpoint="audio_embedding",
                                 trainable=False)
  logits = keras.layers.Dense(3)(audio(waveform)["embedding_6144"])
  model = keras.Model(waveform, logits)
  assert model(inputs["waveform"]).shape == (3, 3)
  image = keras.Input((None, None, 3), dtype="uint8", name="image")
  vision = keras.layers.TFSMLayer(path, call_endpoint="image_embedding")
  image_model = keras.Model(image, vision(image))
  score = keras.layers.TFSMLayer(path, call_endpoint="avc_score")
  score_model = keras.Model([image, waveform],
                            score(image, waveform=waveform))
  for got, expected in (
      (model.get_layer(index=1)(inputs["waveform"]),
       loaded["audio_embedding"](waveform=tf.constant(inputs["waveform"]))),
      (image_model(inputs["image_256"]),
       loaded["image_embedding"](image=tf.constant(inputs["image_256"]))),
      (score_model([inputs["image_256"], inputs["waveform"]]),
       loaded["avc_score"](image=tf.constant(inputs["image_256"]),
                           waveform=tf.constant(inputs["waveform"])))):
    assert sorted(got) == sorted(expected)
    for key in expected:
      if key == "probability":
        embeddings = {name: loaded[name](**{arg: tf.constant(inputs[x])})[
            "embedding_512"] for name, arg, x in (
                ("image_embedding", "image", "image_256"),
                ("audio_embedding", "waveform", "waveform"))}
        logits = testing.head_logits(tiny_export.avc,
                                     embeddings["image_embedding"],
                                     embeddings["audio_embedding"])
        testing.assert_probability_close(got[key], expected[key].numpy(),
                                         tiny_bound, logits)
      else:
        testing.assert_close_normwise(np.asarray(got[key]),
                                      expected[key].numpy(), tiny_bound,
                                      what=key)
  # The export is a frozen feature extractor; only the Dense trains.
  assert [w.shape for w in model.trainable_weights] == [(192, 3), (3,)]


def test_check_finds_the_wrong_weights(tiny_export, converted, tmp_path):
  _, _ = testing.make_trained_workdir(str(tmp_path / "other"), seed=1)
  from l3_tf.training import workdir as workdir_lib
  other = workdir_lib.latest_checkpoint(str(tmp_path / "other"))
  for name in ("audio_tower_waveform_float32.tflite", "vision_tower.keras"):
    assert export_check.check(converted[name])["passed"], name
    result = export_check.check(converted[name], checkpoint=other)
    assert not result["passed"], name
    assert "FAIL" in export_check.format_check(result)
  assert export_check.check(tiny_export.saved_model)["passed"]
  assert not export_check.check(tiny_export.saved_model, other)["passed"]


@pytest.mark.slow  # two fresh TensorFlow processes
def test_export_and_check_commands(tiny_export, converted, tmp_path):
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [ROOT] + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
  out = str(tmp_path / "keras")
  done = subprocess.run(
      [sys.executable, "-m", "experiments.export",
       f"--workdir={tiny_export.workdir}", f"--output={out}",
       "--format=keras"], capture_output=True, text=True, env=env, cwd=ROOT)
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout.count("PASS: ") == 3  # verified after writing
  assert sorted(os.listdir(out)) == sorted(
      ["audio_tower.keras", "vision_tower.keras", "avc_network.keras",
       export_formats.MANIFEST])
  checked = subprocess.run(
      [sys.executable, "-m", "experiments.export",
       f"--check={converted['vision_tower_float32.tflite']}"],
      capture_output=True, text=True, env=env, cwd=ROOT)
  assert checked.returncode == 0, checked.stderr[-2000:]
  assert "embedding_8192: max abs error" in checked.stdout
  assert checked.stdout.strip().splitlines()[-1].startswith("PASS: ")


def test_a_missing_extra_is_named(tiny_export, tmp_path, monkeypatch):
  # A None entry makes `import` raise ImportError, as if not installed.
  for module in ("ai_edge_litert", "ai_edge_litert.interpreter", "tf2onnx"):
    monkeypatch.setitem(sys.modules, module, None)
  for fmt in ("litert", "onnx"):
    with pytest.raises(export_formats.MissingExtraError,
                       match=r"pip install 'l3_tf\[export\]'"):
      export_formats.convert_workdir(tiny_export.workdir,
                                     str(tmp_path / fmt), fmt)
  assert not os.path.exists(tmp_path / "litert" / export_formats.MANIFEST)


def test_convert_validates_its_arguments(tiny_export, converted, tmp_path):
  folder = os.path.dirname(converted["vision_tower.keras"])
  with pytest.raises(FileExistsError, match="overwrite"):
    export_formats.convert_workdir(tiny_export.workdir, folder, "keras")
  with pytest.raises(ValueError, match="quantization='int8' needs"):
    export_formats.convert_workdir(tiny_export.workdir, str(tmp_path / "q"),
                                   "litert", quantizations=("int8",))
  with pytest.raises(ValueError, match="only LiteRT"):
    export_formats.convert_workdir(tiny_export.workdir, str(tmp_path / "o"),
                                   "onnx", quantizations=("dynamic_int8",))
  with pytest.raises(ValueError, match="audio_inputs=\\['mel'\\]"):
    export_formats.convert_workdir(tiny_export.workdir, str(tmp_path / "o"),
                                   "litert", audio_inputs=("mel",))
  with pytest.raises(FileNotFoundError, match="not listed"):
    export_check.check(str(tiny_export.saved_model) + "/saved_model.pb")
