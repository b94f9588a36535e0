"""The SavedModel export: signatures, assets, and reload in a fresh process."""

import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from l3_tf.model import networks as model_lib
from l3_tf.serving import export as export_lib
from l3_tf.training import workdir as workdir_lib
from tests import testing

WIDTH = 1 / 32


@pytest.fixture(scope="module")
def trained(tiny_export):
  """(workdir, config, Keras model, export path) of a tiny trained model."""
  assert tiny_export.config.model.width_multiplier == WIDTH
  return (tiny_export.workdir, tiny_export.config, tiny_export.avc,
          tiny_export.saved_model)


@pytest.fixture(scope="module")
def loaded(trained):
  import tensorflow as tf
  return tf.saved_model.load(trained[3])


# The child imports nothing of l3_tf: the export must be self-contained.
_RELOAD_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    export_path, inputs_path, outputs_path = sys.argv[1:]
    inputs = np.load(inputs_path)
    loaded = tf.saved_model.load(export_path)
    image = tf.constant(inputs["image"])
    waveform = tf.constant(inputs["waveform"])
    outputs = {}
    for name, kwargs in (("audio_embedding", {"waveform": waveform}),
                         ("image_embedding", {"image": image}),
                         ("avc_score", {"image": image, "waveform": waveform})):
      for key, value in loaded.signatures[name](**kwargs).items():
        outputs[name + "/" + key] = value.numpy()
    np.savez(outputs_path, **outputs)
""")


def test_fresh_process_reload_matches_keras_for_every_signature(trained,
                                                                tmp_path,
                                                                tiny_bound):
  _, config, avc, path = trained
  inputs = export_lib.reference_inputs(config)
  np.savez(tmp_path / "inputs.npz", **inputs)
  subprocess.run(
      [sys.executable, "-c", _RELOAD_SCRIPT, path, str(tmp_path / "inputs.npz"),
       str(tmp_path / "outputs.npz")], check=True, capture_output=True)
  got = dict(np.load(tmp_path / "outputs.npz"))
  expected = export_lib.keras_reference_outputs(avc, config, inputs)
  expected = {f"{name}/{key}": value for name, outputs in expected.items()
              for key, value in outputs.items()}
  assert sorted(got) == sorted(expected) == [
      "audio_embedding/embedding_512", "audio_embedding/embedding_6144",
      "avc_score/probability", "image_embedding/embedding_512",
      "image_embedding/embedding_8192"]
  logits = testing.head_logits(avc, expected["image_embedding/embedding_512"],
                               expected["audio_embedding/embedding_512"])
  for key, value in expected.items():
    assert got[key].shape == value.shape, key
    if key == "avc_score/probability":
      testing.assert_probability_close(got[key], value, tiny_bound, logits,
                                       what=key)
    else:
      testing.assert_close_normwise(got[key], value, tiny_bound, what=key)
  # The model is not degenerate: outputs vary across the batch.
  assert np.ptp(got["avc_score/probability"]) > 1e-4
  assert np.ptp(got["audio_embedding/embedding_6144"], axis=0).max() > 1e-3


def test_saved_model_cli_lists_the_three_signatures(trained):
  path = trained[3]
  cli = pathlib.Path(sys.executable).parent / "saved_model_cli"
  shown = subprocess.run([str(cli), "show", "--dir", path, "--all"],
                         check=True, capture_output=True, text=True).stdout
  for name in export_lib.SIGNATURES:
    assert f"signature_def['{name}']" in shown
  # Typed inputs with a free batch (and for images a free size).
  assert "dtype: DT_UINT8\n        shape: (-1, -1, -1, 3)" in shown
  assert "dtype: DT_FLOAT\n        shape: (-1, 48000)" in shown
  for output in ("embedding_512", "embedding_6144", "embedding_8192",
                 "probability"):
    assert f"outputs['{output}']" in shown


def test_assets_record_config_front_ends_and_sizes(trained):
  workdir, config, _, path = trained
  assets = export_lib.read_assets(path)
  assert assets["config"] == config == workdir_lib.read_config(workdir)
  assert assets["audio_params"] == config.audio
  assert assets["image_params"] == config.image
  info = assets["export"]
  assert info["step"] == 3
  assert info["checkpoint"] == workdir_lib.latest_checkpoint(workdir)
  # 1/32 width: last block 512/32 = 16 channels; audio tap 4 x 3 x 16 = 192,
  # vision tap 4 x 4 x 16 = 256.
  w4 = model_lib.ModelConfig(width_multiplier=WIDTH).widths[-1]
  assert w4 == 16
  assert info["embedding_sizes"] == {
      "audio_embedding": {"embedding_512": 16, "embedding_6144": 192},
      "image_embedding": {"embedding_512": 16, "embedding_8192": 256}}


def test_export_refuses_to_overwrite_unless_asked(trained):
  workdir, _, _, path = trained
  with pytest.raises(FileExistsError, match="overwrite"):
    export_lib.export_workdir(workdir, path)


def test_verify_export_passes_its_model_and_catches_other_weights(trained,
                                                                  loaded):
  _, config, avc, path = trained
  ratios = export_lib.verify_export(path, avc, config, loaded=loaded)
  # Each output's largest ratio to what the round-off bound allows.
  assert sorted(ratios) == [
      "audio_embedding/embedding_512", "audio_embedding/embedding_6144",
      "avc_score/probability", "image_embedding/embedding_512",
      "image_embedding/embedding_8192"]
  assert all(0 <= v <= 1 for v in ratios.values()), ratios
  report = export_lib.verify_export(path, untrained_model(config), config,
                                    tolerance=None, loaded=loaded)
  # Other weights: every embedding far outside round-off.
  assert min(v for k, v in report.items() if "embedding" in k) > 100, report
  with pytest.raises(ValueError, match="differs from the Keras model by more "
                     "than round-off"):
    export_lib.verify_export(path, untrained_model(config), config,
                             loaded=loaded)


def untrained_model(config):
  return model_lib.avc_network(config.model, config.image, config.audio)


def test_avc_score_rejects_batches_of_different_sizes(trained, loaded):
  import tensorflow as tf
  inputs = export_lib.reference_inputs(trained[1], batch=2)
  with pytest.raises(tf.errors.InvalidArgumentError, match="differ in size"):
    loaded.avc_score(tf.constant(inputs["image"]),
                     tf.constant(inputs["waveform"][:1]))


def test_bfloat16_serving_is_close_to_float32(trained):
  testing.skip_unless_bf16_runs()
  _, config, avc, _ = trained
  module = export_lib.L3Serving(avc, config, compute_dtype="bfloat16")
  inputs = export_lib.reference_inputs(config)
  got = export_lib.signature_outputs(
      {name: getattr(module, name) for name in export_lib.SIGNATURES}, inputs)
  expected = export_lib.keras_reference_outputs(avc, config, inputs)
  for name in ("audio_embedding", "image_embedding"):
    for key, value in expected[name].items():
      a, b = value.ravel(), got[name][key].ravel()
      cosine = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
      assert 0.99 < cosine, (name, key, cosine)
      assert not np.array_equal(a, b)  # it did compute in bfloat16
  np.testing.assert_allclose(got["avc_score"]["probability"],
                             expected["avc_score"]["probability"], atol=0.02)
