"""The `make demo` binary, end to end at smoke-test scale.

`make demo` itself (the demo config, ~10 minutes) is not run by the suite;
this runs the same binary with the 1/32-width `test` config on synthetic_av's
12-video `tiny` set, and checks what its users read: the DEMO_RESULT line,
the evaluation, the export and the embedded video.
"""

import json
import os
import subprocess
import sys

import numpy as np

from l3_tf.training import workdir as workdir_lib
from tests import testing


def test_demo_binary_prints_its_result_and_exports(tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  env["PYTHONPATH"] = os.pathsep.join([str(testing.REPO_ROOT),
                                       env.get("PYTHONPATH", "")])
  run = subprocess.run(
      [sys.executable, "-m", "experiments.demo", "--config=test",
       "--data=tiny", f"--workdir={tmp_path}", "--seed=3"],
      env=env, capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stderr[-3000:]
  lines = [l for l in run.stdout.splitlines() if l.startswith("DEMO_RESULT ")]
  assert len(lines) == 1, run.stdout
  result = json.loads(lines[0][len("DEMO_RESULT "):])

  assert result["steps"] == 2
  assert result["seed"] == 3  # `make demo SEED=3`
  with open(os.path.join(str(tmp_path), "avc", "config.json")) as f:
    assert json.load(f)["train"]["seed"] == 3
  assert result["numeric_path"]["onednn"] in (True, False, None)
  assert 0.0 <= result["avc_test_accuracy"] <= 1.0
  # Same-class negatives cap a class-level model; at most every negative.
  negatives = result["eval_num_pairs"] // 2
  assert 0 <= result["same_class_negatives"] <= negatives
  assert result["class_level_ceiling"] == round(
      1 - result["same_class_negatives"] / result["eval_num_pairs"], 4)
  assert result["train_seconds"] > 0
  config = result["config"]
  assert config["name"] == "test" and config["narrowed"] is True
  assert config["widths"] == [2, 4, 8, 16]
  assert result["dataset"]["split_sizes"] == {"train": 8, "validation": 2,
                                              "test": 2}

  train_dir = os.path.join(str(tmp_path), "avc")
  assert result["workdir"] == train_dir
  with open(os.path.join(train_dir, "eval_test.json")) as f:
    assert json.load(f)["accuracy"] == result["avc_test_accuracy"]
  assert workdir_lib.latest_checkpoint(train_dir).endswith("ckpt-2")

  assert os.path.exists(os.path.join(result["export_path"], "saved_model.pb"))
  video = result["embedded_video"]
  arrays = np.load(video["embeddings_path"])
  assert arrays["audio_embedding"].shape[0] == video["num_timestamps"] > 0
  assert list(arrays["audio_embedding"].shape) == video["audio_embedding_shape"]
  assert list(arrays["image_embedding"].shape) == video["image_embedding_shape"]
  # The 1/32 network: conv4_2 has 16 channels, pooled 4x3 / 4x4.
  assert video["audio_embedding_shape"][1] == 16 * 4 * 3
  assert video["image_embedding_shape"][1] == 16 * 4 * 4
