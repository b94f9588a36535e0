"""No figure from a model that computes NaN (issue 26): every consumer of a
checkpoint or an export refuses it, exit 1, the message naming the
checkpoint or export and the variable or output, and writes no result.

The binaries run on one tiny AVE-Net (an export with a shared space serves
l3-search too), trained briefly and then given a NaN in one weight of its
workdir's checkpoint and of its export (the export was written first). The
in-process tests take a model whose weights are finite but whose forward
pass overflows, what one step at learning rate 1e30 leaves.
"""

import dataclasses
import os
import subprocess
import sys
import types

import numpy as np
from PIL import Image
import pytest

from data_prep import dummy_media
from l3_tf.model import finite
from l3_tf.model import networks as model_lib
from l3_tf.serving import embed
from l3_tf.serving import export as export_lib
from l3_tf.training import evaluate
from tests import testing

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TINY_WIDTH = 1 / 32
_VARIABLE = "audio_tower/conv1_1/kernel"


@pytest.fixture(scope="module")
def nan_model(tmp_path_factory):
  """A NaN-weighted workdir and export, and inputs every binary accepts."""
  root = tmp_path_factory.mktemp("nan_model")
  workdir = str(root / "workdir")
  testing.make_trained_workdir(workdir, _TINY_WIDTH, fusion="distance")
  saved_model = export_lib.export_workdir(workdir, str(root / "export"),
                                          verify=False)
  # The variable as the export's check names it: through its signature.
  export_variable = "audio_embedding/" + testing.set_export_value(
      saved_model, "audio_embedding").split(":")[0]
  checkpoint = testing.set_checkpoint_value(workdir, _VARIABLE)
  inputs = root / "inputs"
  (inputs / "videos").mkdir(parents=True)
  video = dummy_media.write_video(inputs / "videos" / "clip.mp4",
                                  seconds=2.0)
  tone = testing.write_audio(
      str(inputs / "tone.wav"),
      0.3 * np.sin(2 * np.pi * 440 * np.arange(24000) / 16000), 16000)
  image = str(inputs / "frame.png")
  Image.fromarray(np.full((60, 80, 3), 90, np.uint8)).save(image)
  dummy_media.write_esc10(inputs / "esc10")
  return types.SimpleNamespace(
      root=root, workdir=workdir, checkpoint=checkpoint,
      saved_model=saved_model, export_variable=export_variable,
      video=str(video), tone=tone, image=image, inputs=inputs)


def _run(args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=_ROOT)
  return subprocess.run([sys.executable, "-m", *args], cwd=_ROOT, env=env,
                        capture_output=True, text=True, timeout=300)


def _files(path) -> list[str]:
  return sorted(os.path.relpath(os.path.join(folder, name), path)
                for folder, _, names in os.walk(path) for name in names)


# consumer -> (its arguments, the folder it would write its result in).
_CONSUMERS = {
    "eval_avc": lambda m, out: (
        ["experiments.eval_avc", f"--workdir={m.workdir}", "--num_pairs=8"],
        None),
    "avc_table": lambda m, out: (
        ["experiments.avc_table", f"--l3_workdir={m.workdir}",
         "--baselines_config=test", f"--output_dir={out}"], out),
    "audio_transfer": lambda m, out: (
        ["experiments.audio_transfer", "--dataset=esc10",
         f"--manual_dir={m.inputs / 'esc10'}", f"--weights={m.workdir}",
         f"--output_dir={out}", f"--cache_dir={out}_cache"], out),
    "l3-embed": lambda m, out: (
        ["experiments.embed", "audio", m.tone, f"--model={m.saved_model}",
         f"--output_dir={out}", "--noprogress"], out),
    "l3-score": lambda m, out: (
        ["experiments.score", f"--model={m.saved_model}",
         f"--image={m.image}", f"--audio={m.tone}"], None),
    "l3-search": lambda m, out: (
        ["experiments.search", "index", str(m.inputs / "videos"),
         f"--model={m.saved_model}", f"--index={out}", "--noprogress"], out),
}


@pytest.mark.slow  # a binary each: ~10 s on 2 free cores
@pytest.mark.parametrize("consumer", sorted(_CONSUMERS))
def test_consumer_of_a_nan_model_exits_1_naming_it_and_writes_nothing(
    nan_model, tmp_path, consumer):
  out = tmp_path / "out"
  args, result_dir = _CONSUMERS[consumer](nan_model, out)
  workdir_files = _files(nan_model.workdir)
  run = _run(args)
  assert run.returncode == 1, run.stderr[-3000:]
  message = run.stderr
  if "--model=" in " ".join(args):  # an export
    assert (f"export {nan_model.saved_model}: variable "
            f"{nan_model.export_variable} holds NaN or inf") in message
  else:
    assert (f"checkpoint {nan_model.checkpoint}: variable {_VARIABLE} "
            "holds NaN or inf") in message
  assert "Traceback" not in run.stderr
  assert '"probability"' not in run.stdout and "accuracy" not in run.stdout
  assert _files(nan_model.workdir) == workdir_files  # no eval_*.json
  if result_dir is not None:
    assert _files(result_dir) == [] and _files(f"{result_dir}_cache") == []


# Finite weights that compute +inf on every numeric path (Eigen, oneDNN at
# any ISA, XLA): no summation order or fused kernel can avoid the overflow,
# and +inf passes ReLU and max pooling unchanged. (A -1e38 first kernel, used
# before, gave NaN on Eigen but zeros on oneDNN, whose ReLU maps -inf and NaN
# to 0: that premise depended on the path.)
_HUGE = 3e38  # finite in float32 (max 3.4e38); the product of two overflows


def _set(model, layer: str, path: str, value: float) -> None:
  variable, = [v for v in model.get_layer(layer).variables if v.path == path]
  variable.assign(np.full(variable.shape, value, np.float32))


@pytest.fixture(scope="module")
def overflowing():
  """An audio tower whose last block outputs +inf for any finite input: its
  convolution computes exact zeros, its batch norm (gamma 3e38, moving mean
  -3e38) multiplies 3e38 by 3e38."""
  config = testing.tiny_config(_TINY_WIDTH)
  avc = model_lib.avc_network(config.model, config.image, config.audio)
  _set(avc, "audio_tower", "conv4_2/kernel", 0.0)
  _set(avc, "audio_tower", "conv4_2_bn/gamma", _HUGE)
  _set(avc, "audio_tower", "conv4_2_bn/moving_mean", -_HUGE)
  return config, avc


@pytest.fixture(scope="module")
def overflowing_logits():
  """Finite towers, a fusion MLP whose logits are +inf for any finite
  input: fc1 ignores its input (zero kernel) and outputs its 3e38 bias;
  fc2 sums 128 of those (all positive, so every order overflows)."""
  config = testing.tiny_config(_TINY_WIDTH)
  avc = model_lib.avc_network(config.model, config.image, config.audio)
  _set(avc, "fusion_head", "fc1/kernel", 0.0)
  _set(avc, "fusion_head", "fc1/bias", _HUGE)
  _set(avc, "fusion_head", "fc2/kernel", 1.0)
  return config, avc


def test_the_embedding_api_raises_a_clear_error(overflowing):
  """A user's inputs are finite; the embedder says the model is at fault
  (before, it returned NaN embeddings like any others). A NaN input row
  still gives a NaN row (the export's contract), not this error."""
  config, avc = overflowing
  embedder = embed.Embedder.from_model(avc, config, "huge weights")
  tone = 0.3 * np.sin(np.arange(60000) / 10).astype(np.float32)
  with pytest.raises(finite.NonFiniteError,
                     match=r"^huge weights: audio_embedding embedding_6144"
                     r"\[0, \d+\] is .*although the inputs are finite"):
    embedder.embed_audio(tone, 48000)


def test_an_export_that_computes_nan_is_refused_at_load(tmp_path):
  """Finite weights whose forward pass overflows, exported before the
  check existed: refused when loaded, before anything is embedded."""
  root = tmp_path / "huge"
  testing.make_trained_workdir(str(root / "workdir"), _TINY_WIDTH)
  saved_model = export_lib.export_workdir(str(root / "workdir"),
                                          str(root / "export"), verify=False)
  testing.set_export_value(saved_model, "audio_embedding", -1e38,
                           everywhere=True)
  with pytest.raises(finite.NonFiniteError,
                     match=rf"^{saved_model}: audio_embedding embedding_\d+ "
                     r"of a probe input\[0, \d+\] is "):
    embed.Embedder.load(saved_model)


def test_evaluation_scores_no_nan_logits(overflowing_logits, fake_config):
  """Before: accuracy 0.5, loss NaN, written to eval_<split>.json."""
  config, avc = overflowing_logits
  config = dataclasses.replace(config, data=fake_config.data)
  with pytest.raises(finite.NonFiniteError,
                     match=r"^ckpt-7: the 'test' evaluation logits\[0, \d\] "
                     r"is inf \(16 of 16 values"):
    evaluate.evaluate_model(avc, config, split="test", num_pairs=8,
                            source="ckpt-7")


def test_export_refuses_a_model_that_computes_nan(overflowing, tmp_path):
  config, avc = overflowing
  with pytest.raises(finite.NonFiniteError,
                     match=r"probe pair's audio_tower embedding_512"):
    export_lib.export(avc, config, str(tmp_path / "export"))
  assert not os.path.exists(tmp_path / "export")
