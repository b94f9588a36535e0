"""Datasets, workdirs and exports on object storage (`l3_tf.platform.filesystems`).

The S3 tests run against a real S3-compatible server (moto's server mode) on
a free port on 127.0.0.1, started by a fixture and stopped after; every step
that touches S3 runs in a subprocess, because tensorflow-io aborts any
process that used S3 at interpreter exit (which would take pytest with it),
and the binaries' exit codes are checked there. They are skipped, with the
reason, where tensorflow-io is not installed (Python 3.13); the error users
get there is tested on every stack.
"""

import importlib.util
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from l3_tf.platform import filesystems
from tests import s3_server
from tests import testing

_ROOT = str(testing.REPO_ROOT)
_TESTS = os.path.join(_ROOT, "tests")
_BUCKET = s3_server.BUCKET
_HAS_TFIO = importlib.util.find_spec("tensorflow_io") is not None
needs_tfio = pytest.mark.skipif(
    not _HAS_TFIO, reason="tensorflow-io is not installed (Python 3.13 has "
    "no wheel): s3:// is unavailable, see test_missing_tensorflow_io_*")


# The server helper is shared with the Beam pipeline's S3 test.
_S3Server = s3_server.S3Server
_running_server = s3_server.running_server


def _run(args, env, timeout=600):
  """Runs `python args...` from the project root; returns the process."""
  return subprocess.run([sys.executable, *args], cwd=_ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)


def _train_args(data_dir, workdir, num_steps):
  return ["-m", "experiments.train_avc", "--config=test",
          f"--workdir={workdir}", "--set", "data.dataset=fake_av_videos",
          "--set", f"data.data_dir={data_dir}",
          "--set", f"train.num_steps={num_steps}",
          "--set", "train.summary_images_every_steps=0"]


def _result(process, prefix="TRAIN_RESULT "):
  lines = [line for line in process.stdout.splitlines()
           if line.startswith(prefix)]
  assert lines, process.stdout[-2000:] + process.stderr[-3000:]
  return json.loads(lines[-1][len(prefix):])


def _checkpoint_steps(server, prefix):
  return sorted(int(key.rsplit("ckpt-", 1)[1].split(".")[0])
                for key in server.keys(prefix) if key.endswith(".index"))


# What a subprocess runs to build the fake videos into a data_dir; it ends
# with os._exit because of the abort at exit (see the module docstring).
_BUILD = """
import os, sys
from l3_tf.platform import filesystems
data_dir = filesystems.prepare(sys.argv[1], "data_dir")
from tests import fake_videos
fake_videos.build(data_dir)
print("BUILT", flush=True)
os._exit(0)
"""


@needs_tfio
@pytest.mark.slow
def test_s3_round_trip_build_train_kill_resume_export():
  """Dataset in s3://l3-test/tfds, workdir in s3://l3-test/runs/x, killed
  and resumed from its S3 checkpoint, exported to S3; exit codes stay
  0 / 1 although every process used S3."""
  with _running_server() as server:
    env = server.env()
    data_dir = f"s3://{_BUCKET}/tfds"
    workdir = f"s3://{_BUCKET}/runs/x"
    built = _run(["-c", _BUILD, data_dir], env)
    assert built.returncode == 0 and "BUILT" in built.stdout, built.stderr[-3000:]
    assert any(key.endswith(".tfrecord-00000-of-00001")
               for key in server.keys("tfds/fake_av_videos/"))

    # A long run, killed (SIGKILL: no chance to save) once a checkpoint
    # past step 1 is on S3.
    process = subprocess.Popen(
        [sys.executable, *_train_args(data_dir, workdir, 1000)], cwd=_ROOT,
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
      deadline = time.monotonic() + 600
      while time.monotonic() < deadline and process.poll() is None:
        if any(step >= 2 for step in _checkpoint_steps(server, "runs/x/")):
          break
        time.sleep(1)
    finally:
      process.send_signal(signal.SIGKILL)
      _, stderr = process.communicate(timeout=60)
    steps = _checkpoint_steps(server, "runs/x/checkpoints/")
    assert steps and steps[-1] >= 2, stderr[-3000:]
    killed_at = steps[-1]
    # The state file names the newest checkpoint whose save finished; a kill
    # between a checkpoint's objects and the state file's update leaves it
    # unnamed, and a resume rightly starts from the one named.
    state = server.client().get_object(
        Bucket=_BUCKET, Key="runs/x/checkpoints/checkpoint")["Body"].read()
    # Relative or absolute paths: "ckpt-3" or ".../checkpoints/ckpt-3".
    listed = re.search(rf'[/"]ckpt-{killed_at}"', state.decode()) is not None

    resumed = _run(_train_args(data_dir, workdir, killed_at + 1), env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = _result(resumed)
    # The newest checkpoint, unless the kill cut its upload short (on S3 a
    # "rename" is a copy: its .index can be there before its data is whole);
    # then the one before it, with the damaged one named.
    assert result["start_step"] in steps and result["start_step"] >= 1
    if result["start_step"] != killed_at and listed:
      assert f"ckpt-{killed_at} is damaged" in resumed.stderr, (
          resumed.stderr[-3000:])
    assert result["step"] == killed_at + 1
    assert result["eval"]["checkpoint"] == (
        f"{workdir}/checkpoints/ckpt-{killed_at + 1}")

    output = f"s3://{_BUCKET}/exports/x"
    exported = _run(["-m", "experiments.export", f"--workdir={workdir}",
                     f"--output={output}"], env)  # reloaded and verified
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert "exports/x/saved_model.pb" in server.keys("exports/x/")
    assert not [key for key in server.keys("exports/") if ".tmp-" in key]
    # An error after S3 was used keeps its exit status (1, not 134).
    again = _run(["-m", "experiments.export", f"--workdir={workdir}",
                  f"--output={output}"], env)
    assert again.returncode == 1, again.stderr[-3000:]
    assert "exists; pass overwrite=True" in again.stderr

    # l3-embed from the S3 export into an S3 --output_dir.
    with tempfile.TemporaryDirectory() as local:
      tone = os.path.join(local, "tone.wav")
      t = np.arange(int(1.5 * 16000)) / 16000
      testing.write_audio(tone, 0.3 * np.sin(2 * np.pi * 440 * t), 16000)
      embedded = _run(["-m", "experiments.embed", "audio", tone,
                       f"--model={output}", "--hop_seconds=0.5",
                       f"--output_dir=s3://{_BUCKET}/embeddings",
                       "--noprogress"], env)
      assert embedded.returncode == 0, embedded.stderr[-3000:]
      assert server.keys("embeddings/") == ["embeddings/tone.npz"]
      body = server.client().get_object(
          Bucket=_BUCKET, Key="embeddings/tone.npz")["Body"].read()
      arrays = np.load(io.BytesIO(body))
      np.testing.assert_allclose(arrays["timestamps"], [0.0, 0.5, 1.0])
      assert np.all(np.isfinite(arrays["embedding"]))


@needs_tfio
@pytest.mark.slow
def test_s3_server_down_fails_at_once_and_writes_nothing(fake_videos_dir):
  """Training into an S3 workdir whose server is stopped: exit 1 with an
  error naming the path and the endpoint; once the server is back, the
  workdir holds nothing (no checkpoint to resume from)."""
  server = _S3Server()
  server.start()
  server.client().create_bucket(Bucket=_BUCKET)
  env = server.env()
  server.stop()
  workdir = f"s3://{_BUCKET}/runs/down"
  try:
    down = _run(_train_args(fake_videos_dir, workdir, 2), env, timeout=300)
    assert down.returncode == 1, down.stderr[-3000:]
    assert f"workdir='{workdir}'" in down.stderr
    assert f"S3_ENDPOINT='{server.endpoint}' does not answer" in down.stderr
  finally:
    server.start()
  try:
    # This workdir only: the server's objects live in this process, so an
    # earlier test's bucket contents are still there.
    assert server.keys("runs/down") == []
  finally:
    server.stop()


@needs_tfio
@pytest.mark.slow
def test_two_trainers_on_one_s3_workdir_the_second_refuses(fake_videos_dir):
  """The lock object (owner and heartbeat) of the first trainer stops the
  second at start, as `<workdir>/lock` does on a local disk; the first
  releases it when it stops."""
  with _running_server() as server:
    env = server.env()
    workdir = f"s3://{_BUCKET}/runs/locked"
    first = subprocess.Popen(
        [sys.executable, *_train_args(fake_videos_dir, workdir, 1000)],
        cwd=_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True)
    try:
      deadline = time.monotonic() + 300
      while (time.monotonic() < deadline and first.poll() is None and
             "runs/locked/checkpoints/checkpoint" not in server.keys(
                 "runs/locked/")):
        time.sleep(0.5)
      assert first.poll() is None, first.communicate()[1][-3000:]
      assert "runs/locked/lock" in server.keys("runs/locked/")
      second = _run(_train_args(fake_videos_dir, workdir, 2), env,
                    timeout=300)
      assert second.returncode == 1, second.stderr[-3000:]
      assert (f"workdir '{workdir}' is being written by pid {first.pid} on "
              "host") in second.stderr
      assert ("a lock whose heartbeat is older than 300 s is taken over"
              in second.stderr)
    finally:
      first.send_signal(signal.SIGTERM)  # saves, releases, exits 143
      _, stderr = first.communicate(timeout=300)
    assert first.returncode == 143, stderr[-3000:]
    assert "runs/locked/lock" not in server.keys("runs/locked/")


def _tfds_build(args, env, runner):
  return subprocess.run([*runner, "build", "data_prep/esc10", *args],
                        cwd=_ROOT, env=env, capture_output=True, text=True,
                        timeout=600)


@needs_tfio
def test_plain_tfds_build_onto_s3_fails_at_once_with_the_advice(tmp_path):
  """TFDS's own `tfds` exits 134 after any S3 use, whatever the build did:
  it refuses before touching S3 and names the entry point that works."""
  from data_prep import dummy_media  # pylint: disable=g-import-not-at-top
  dummy_media.write_esc10(tmp_path / "esc10")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=_ROOT)
  tfds = os.path.join(os.path.dirname(sys.executable), "tfds")
  run = _tfds_build([f"--manual_dir={tmp_path / 'esc10'}",
                     f"--data_dir=s3://{_BUCKET}/tfds"], env, [tfds])
  assert run.returncode == 1, run.stderr[-3000:]
  assert "python -m experiments.tfds_cli build" in run.stderr
  assert "exit status 134" in run.stderr


@needs_tfio
@pytest.mark.slow
def test_tfds_build_onto_s3_exits_with_the_builds_status(tmp_path):
  """`python -m experiments.tfds_cli build ...` onto S3: 0 when the build
  succeeds, 1 when it fails (before: 134 from the abort at exit, either
  way)."""
  from data_prep import dummy_media  # pylint: disable=g-import-not-at-top
  dummy_media.write_esc10(tmp_path / "esc10")
  runner = [sys.executable, "-m", "experiments.tfds_cli"]
  with _running_server() as server:
    env = server.env()
    built = _tfds_build([f"--manual_dir={tmp_path / 'esc10'}",
                         f"--data_dir=s3://{_BUCKET}/built"], env, runner)
    assert built.returncode == 0, built.stderr[-3000:]
    assert any(".tfrecord-" in key for key in server.keys("built/esc10/"))
    failed = _tfds_build([f"--manual_dir={tmp_path / 'missing'}",
                          f"--data_dir=s3://{_BUCKET}/failed"], env, runner)
    assert failed.returncode == 1, failed.stderr[-3000:]
    assert "missing" in failed.stderr


def test_scheme_of_and_local_paths_pass():
  assert filesystems.scheme_of("S3://bucket/x") == "s3"
  assert filesystems.is_url("file:///tmp/x") and filesystems.is_url("gs://b/x")
  assert not filesystems.is_url("/tmp/x") and not filesystems.is_url("a/b")
  assert filesystems.scheme_of("/data/tfds") == ""
  assert filesystems.scheme_of("gs://bucket/x") == "gs"
  assert filesystems.is_object_store("hdfs://namenode/x")
  assert not filesystems.is_object_store(None)
  for path in (None, "/tmp/x", "relative/dir", "gs://bucket/tfds"):
    assert filesystems.prepare(path, "data.data_dir") == path
  assert not filesystems.used()


@pytest.mark.parametrize("scheme", filesystems.TFIO_SCHEMES)
def test_missing_tensorflow_io_names_path_scheme_and_package(scheme,
                                                             monkeypatch):
  # None in sys.modules makes `import tensorflow_io` fail as if absent (it
  # is absent on Python 3.13).
  monkeypatch.setitem(sys.modules, "tensorflow_io", None)
  path = f"{scheme}://bucket/tfds"
  with pytest.raises(filesystems.FileSystemError) as error:
    filesystems.prepare(path, "data.data_dir")
  message = str(error.value)
  assert f"data.data_dir='{path}'" in message
  assert f"the {scheme}:// file system needs tensorflow-io" in message
  assert "tensorflow-io==0.37.1" in message
  assert error.value.path == path and error.value.scheme == scheme
  assert isinstance(error.value, ValueError)
  assert not filesystems.used()


_WITHOUT_TFIO = """
import runpy, sys
sys.modules["tensorflow_io"] = None  # absent, as on Python 3.13
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
def test_missing_tensorflow_io_fails_binaries_at_the_door(fake_videos_dir,
                                                          tmp_path):
  """train_avc with an s3:// workdir and l3-embed with an s3://
  --output_dir, without tensorflow-io: exit 1 at once, the error names the
  flag, the path and what to install; nothing is written locally."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
             PYTHONPATH=os.pathsep.join([_ROOT, _TESTS]))
  train = _run(["-c", _WITHOUT_TFIO, "experiments.train_avc",
                *_train_args(fake_videos_dir, "s3://l3-test/runs/y", 2)[2:]],
               env, timeout=300)
  assert train.returncode == 1, train.stderr[-3000:]
  assert "workdir='s3://l3-test/runs/y'" in train.stderr
  assert "tensorflow-io==0.37.1" in train.stderr
  embed = _run(["-c", _WITHOUT_TFIO, "experiments.embed", "audio",
                str(tmp_path), f"--model={tmp_path}",
                "--output_dir=az://container/embeddings"], env, timeout=300)
  assert embed.returncode == 1, embed.stderr[-3000:]
  assert "--output_dir='az://container/embeddings'" in embed.stderr
  assert "the az:// file system needs tensorflow-io" in embed.stderr
  assert not os.path.exists(os.path.join(_ROOT, "s3:"))
