"""Workdirs and exports written by the flat l3_tf (before issue 23's move) still load.

The old code is taken from git history at `BEFORE_MOVE` (`git archive`), run
in a fresh process to train a tiny network for 3 steps, checkpoint it, export
it and embed a seeded window and image; this tree then restores the same
checkpoint and loads the same export and must compute the same numbers. Only
module paths moved, so nothing in a checkpoint (object-graph names) or a
SavedModel (signatures) refers to them: this test keeps it so.
"""

import io
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest

import l3_tf

from l3_tf.data import audio_frontend
from l3_tf.training import compiled_check
from l3_tf.training import workdir as workdir_lib
from tests import testing

# The last commit with the flat layout (l3_tf/*.py).
BEFORE_MOVE = "b9cb10459c78f7d0bb08ed7486400d979a9f89a2"

_OLD_SCRIPT = r"""
import json, sys
import numpy as np
from l3_tf import audio_frontend, embed, export, testing
workdir, export_dir, out = sys.argv[1:4]
config, avc = testing.make_trained_workdir(workdir)
export.export_workdir(workdir, export_dir, verify=False)
rng = np.random.default_rng(0)
window = rng.normal(0, 0.1, 48000).astype(np.float32)
image = rng.integers(0, 256, (224, 224, 3)).astype(np.uint8)
inputs = {"image": image[None].astype(np.float32) / 127.5 - 1,
          "spectrogram": np.asarray(audio_frontend.log_spectrogram(
              window[None], config.audio))}
embedder = embed.Embedder.load(export_dir)
np.savez(out, window=window, image=image,
         audio=embedder.embed_windows(window[None]),
         vision=embedder.embed_images(image[None]),
         logits=np.asarray(avc(inputs, training=False)))
"""


def _old_tree(root) -> str:
  """This repository's files at BEFORE_MOVE, unpacked under `root`."""
  repo = str(testing.REPO_ROOT)
  known = subprocess.run(["git", "-C", repo, "cat-file", "-e",
                          f"{BEFORE_MOVE}^{{commit}}"], capture_output=True)
  if known.returncode:
    pytest.skip(f"commit {BEFORE_MOVE} is not in this clone's history "
                "(shallow clone?): cannot run the pre-move code")
  archive = subprocess.run(
      ["git", "-C", repo, "archive", BEFORE_MOVE, "l3_tf", "experiments"],
      capture_output=True, check=True).stdout
  with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
    tar.extractall(root, filter="data")
  return str(root)


@pytest.mark.slow
def test_pre_move_checkpoint_and_export_compute_the_same(tmp_path):
  old = _old_tree(tmp_path / "old")
  workdir, export_dir = str(tmp_path / "run"), str(tmp_path / "export")
  out = str(tmp_path / "old_outputs.npz")
  env = dict(os.environ, PYTHONPATH=old, TF_CPP_MIN_LOG_LEVEL="3")
  done = subprocess.run([sys.executable, "-c", _OLD_SCRIPT, workdir,
                         export_dir, out], cwd=old, env=env,
                        capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  old_outputs = np.load(out)

  config, avc, step = workdir_lib.restore_avc_model(workdir)
  assert step == 3
  # float32 sums in another process may be ordered differently by the
  # threadpool: within the round-off bound of two evaluations of the
  # network, normwise (`compiled_check.forward_bound`), far below any real
  # difference.
  bound = compiled_check.forward_bound(avc)
  window, image = old_outputs["window"], old_outputs["image"]
  inputs = {"image": image[None].astype(np.float32) / 127.5 - 1,
            "spectrogram": np.asarray(audio_frontend.log_spectrogram(
                window[None], config.audio))}
  testing.assert_close_normwise(np.asarray(avc(inputs, training=False)),
                                old_outputs["logits"], bound, what="logits")
  loaded = l3_tf.load(export_dir)  # the public door: Embedder.load
  testing.assert_close_normwise(loaded.embed_windows(window[None]),
                                old_outputs["audio"], bound,
                                what="audio embedding")
  testing.assert_close_normwise(loaded.embed_images(image[None]),
                                old_outputs["vision"], bound,
                                what="image embedding")
