"""The AVE-Net export's shared-space signatures and `Embedder.shared_embedding`."""

import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

from l3_tf.serving import embed
from l3_tf.serving import export as export_lib
from tests import testing


@pytest.fixture(scope="module")
def avenet_export(tiny_avenet_export):
  return types.SimpleNamespace(
      workdir=tiny_avenet_export.workdir, config=tiny_avenet_export.config,
      avc=tiny_avenet_export.avc, path=tiny_avenet_export.saved_model)


# Imports nothing of l3_tf: the export must be self-contained.
_RELOAD_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    export_path, inputs_path, outputs_path = sys.argv[1:]
    inputs = np.load(inputs_path)
    loaded = tf.saved_model.load(export_path)
    outputs = {
        "audio": loaded.signatures["shared_audio_embedding"](
            waveform=tf.constant(inputs["waveform"]))["shared_embedding"],
        "image": loaded.signatures["shared_image_embedding"](
            image=tf.constant(inputs["image"]))["shared_embedding"]}
    np.savez(outputs_path, **{k: v.numpy() for k, v in outputs.items()})
""")


@pytest.mark.slow  # a second TF process
def test_fresh_process_shared_signatures_match_keras(avenet_export, tmp_path,
                                                     tiny_avenet_bound):
  inputs = export_lib.reference_inputs(avenet_export.config)
  np.savez(tmp_path / "inputs.npz", **inputs)
  subprocess.run(
      [sys.executable, "-c", _RELOAD_SCRIPT, avenet_export.path,
       str(tmp_path / "inputs.npz"), str(tmp_path / "outputs.npz")],
      check=True, capture_output=True)
  got = dict(np.load(tmp_path / "outputs.npz"))
  expected = export_lib.keras_reference_outputs(
      avenet_export.avc, avenet_export.config, inputs)
  for modality, name in (("audio", export_lib.SHARED_AUDIO_EMBEDDING),
                         ("image", export_lib.SHARED_IMAGE_EMBEDDING)):
    want = expected[name][export_lib.SHARED_OUTPUT]
    assert got[modality].shape == want.shape == (3, 128)
    testing.assert_close_normwise(got[modality], want, tiny_avenet_bound,
                                  what=f"shared {modality} embedding")
    np.testing.assert_allclose(np.linalg.norm(got[modality], axis=1), 1.0,
                               atol=testing.unit_norm_tolerance(128))


def test_assets_say_which_exports_have_a_shared_space(avenet_export,
                                                      tiny_export):
  info = export_lib.read_assets(avenet_export.path)["export"]
  assert info["fusion"] == "distance"
  assert info["shared_space"] == {"dim": 128, "metric": "euclidean",
                                  "unit_norm": True}
  assert set(export_lib.SHARED_SIGNATURES) <= set(info["signatures"])
  l3 = export_lib.read_assets(tiny_export.saved_model)["export"]
  assert l3["shared_space"] is None and "two different spaces" in l3[
      "shared_space_note"]
  assert not set(export_lib.SHARED_SIGNATURES) & set(l3["signatures"])
  with pytest.raises(ValueError, match="two different spaces"):
    embed.Embedder.load(tiny_export.saved_model).shared_embedding(
        windows=np.zeros((1, 48000), np.float32))


def test_embedder_shared_embedding_of_export_and_workdir(avenet_export,
                                                         tiny_avenet_bound):
  inputs = export_lib.reference_inputs(avenet_export.config)
  expected = export_lib.keras_reference_outputs(
      avenet_export.avc, avenet_export.config, inputs)
  for source in (avenet_export.path, avenet_export.workdir):
    embedder = embed.Embedder.load(source)
    images = embedder.shared_embedding(images=inputs["image"], batch_size=2)
    sounds = embedder.shared_embedding(windows=inputs["waveform"])
    testing.assert_close_normwise(
        images, expected[export_lib.SHARED_IMAGE_EMBEDDING]["shared_embedding"],
        tiny_avenet_bound, what=f"shared image embedding from {source}")
    testing.assert_close_normwise(
        sounds, expected[export_lib.SHARED_AUDIO_EMBEDDING]["shared_embedding"],
        tiny_avenet_bound, what=f"shared audio embedding from {source}")
    assert embedder.shared_embedding(images=inputs["image"][0]).shape == (1, 128)
  with pytest.raises(ValueError, match="exactly one"):
    embedder.shared_embedding()
  with pytest.raises(ValueError, match=r"windows shape=\(2, 100\)"):
    embedder.shared_embedding(windows=np.zeros((2, 100), np.float32))
