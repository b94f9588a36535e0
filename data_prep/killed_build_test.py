"""A `tfds build` killed part-way leaves nothing that loads; its rerun gives
the same examples as an uninterrupted build (issue 14).

Each build runs the real `tfds build` command in a subprocess, SIGKILLed
once it has written part of the dataset (generated videos for synthetic_av,
TFRecord shards for both). Neither builder resumes per file: synthetic_av
regenerates its videos unless the previous generation finished (its ground
truth file is written last), and TFDS rewrites every split from zero.
"""

import glob
import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest
import tensorflow_datasets as tfds

from data_prep import dummy_media
from tests import testing

_ENV = dict(os.environ, PYTHONPATH=str(testing.REPO_ROOT),
            TF_CPP_MIN_LOG_LEVEL="3")


def _build_command(dataset, data_dir, *extra):
  return [sys.executable, "-m", "tensorflow_datasets.scripts.cli.main",
          "build", f"data_prep/{dataset}", f"--data_dir={data_dir}",
          "--download_dir", os.path.join(data_dir, "downloads"), *extra]


def _written(data_dir, pattern):
  return glob.glob(os.path.join(data_dir, "**", pattern), recursive=True)


def _build_killed_when(command, data_dir, pattern, timeout=300):
  """Runs `command`, SIGKILLs it once a file matching `pattern` exists."""
  process = subprocess.Popen(command, env=_ENV, cwd=testing.REPO_ROOT,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
  deadline = time.time() + timeout
  try:
    while not _written(data_dir, pattern):
      if process.poll() is not None:
        pytest.fail(f"the build ended ({process.returncode}) before writing "
                    f"{pattern}: {process.stderr.read()[-2000:]}")
      assert time.time() < deadline, "nothing written in time"
      time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
  finally:
    if process.poll() is None:
      process.kill()
  return process.returncode


def _build(command):
  done = subprocess.run(command, env=_ENV, cwd=testing.REPO_ROOT,
                        capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]


def _examples(name, data_dir):
  """{split: {video_id: digest of every feature}} of a prepared dataset."""
  builder = tfds.builder(name, data_dir=data_dir)
  out = {}
  for split in builder.info.splits:
    digests = {}
    for example in tfds.as_numpy(builder.as_dataset(split=split)):
      digest = hashlib.sha256()
      for key in sorted(example):
        value = example[key]
        digest.update(key.encode())
        digest.update(value.tobytes() if hasattr(value, "tobytes")
                      else repr(value).encode())
      digests[example["video_id"].decode()] = digest.hexdigest()
    out[split] = digests
  return out


def _assert_not_loadable(name, data_dir):
  with pytest.raises(Exception, match="(?i)not found|prepare|no such|does not"
                     "|incomplete"):
    builder = tfds.builder(name, data_dir=data_dir)
    builder.as_dataset(split="train")


@pytest.mark.slow
def test_killed_synthetic_av_build_then_rerun(tmp_path):
  name = "synthetic_av/tiny"
  reference_dir = str(tmp_path / "reference")
  _build(_build_command("synthetic_av", reference_dir, "--config=tiny"))
  data_dir = str(tmp_path / "killed")
  command = _build_command("synthetic_av", data_dir, "--config=tiny")
  # Killed while generating the videos, then (rerun) while writing shards.
  for kill_at in ("*.mp4", "*.tfrecord*"):
    assert _build_killed_when(command, data_dir, kill_at) == -signal.SIGKILL
    _assert_not_loadable(name, data_dir)
  _build(command)
  assert _examples(name, data_dir) == _examples(name, reference_dir)


@pytest.mark.slow
def test_killed_video_folder_build_then_rerun(tmp_path):
  videos = tmp_path / "videos"
  dummy_media.write_video_folder(videos)
  name = "video_folder"
  reference_dir = str(tmp_path / "reference")
  manual = f"--manual_dir={videos}"
  _build(_build_command("video_folder", reference_dir, manual))
  data_dir = str(tmp_path / "killed")
  command = _build_command("video_folder", data_dir, manual)
  assert (_build_killed_when(command, data_dir, "*.tfrecord*")
          == -signal.SIGKILL)
  _assert_not_loadable(name, data_dir)
  _build(command)
  assert _examples(name, data_dir) == _examples(name, reference_dir)
