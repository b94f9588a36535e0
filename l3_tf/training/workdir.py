"""The layout of a training workdir: the contract between training and its users.

  <workdir>/config.json          the resolved `l3_tf.training.config.Config`
  <workdir>/checkpoints/ckpt-N   tf.train.Checkpoint with at least
                                 `model` (the `avc_network`) and `step`
  <workdir>/eval_<split>.json    AVC evaluation results
  <workdir>/lock                 while a training process writes it: JSON
                                 {"pid", "host", "started"}; on an object
                                 store also "token" and "heartbeat"
                                 (`WorkdirLock`)

Training writes it; evaluation, export, embedding, transfer and
visualisation read it through the functions below.

One writer per workdir: training holds `<workdir>/lock`; a second trainer
fails at once naming the holder; a lock left by a dead process on this
host is taken over with a `WorkdirWarning`; on an object store the lock
carries a heartbeat and is taken over once that is older than
`WorkdirLock.STALE_SECONDS`. Checkpoints: `latest_checkpoint`
returns the newest checkpoint that reads back whole (every tensor, with
TensorFlow's checksums), passing over a damaged newer one with a
`WorkdirWarning`, so a crash in the middle of a save never leaves a
"latest" checkpoint that fails to restore.
"""

import datetime
import json
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
import warnings

from absl import logging
import keras
import tensorflow as tf

from l3_tf.model import finite
from l3_tf.model import networks as model_lib
from l3_tf.training import distribute
from l3_tf.platform import filesystems
from l3_tf.training import config as config_lib

CONFIG_FILENAME = "config.json"
CHECKPOINT_SUBDIR = "checkpoints"
LOCK_FILENAME = "lock"


class WorkdirWarning(UserWarning):
  """A workdir problem worked around (stale lock, damaged checkpoint)."""


class WorkdirLocked(RuntimeError):
  """Another live process is writing the workdir."""


def config_path(workdir: str) -> str:
  return os.path.join(workdir, CONFIG_FILENAME)


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(workdir, CHECKPOINT_SUBDIR)


def write_config(workdir: str, config: config_lib.Config) -> str:
  """Writes the resolved config as JSON; returns its path."""
  filesystems.prepare(workdir, "workdir")
  tf.io.gfile.makedirs(workdir)
  path = config_path(workdir)
  with tf.io.gfile.GFile(path, "w") as f:
    f.write(config_lib.to_json(config))
  return path


def read_config(workdir: str) -> config_lib.Config:
  """The config a workdir was trained with."""
  filesystems.prepare(workdir, "workdir")
  path = config_path(workdir)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(
        f"{path} does not exist: {workdir!r} is not a training workdir "
        "(run experiments.train_avc first)")
  with tf.io.gfile.GFile(path) as f:
    return config_lib.from_dict(config_lib.Config, json.load(f))


def checkpoint_problem(prefix: str) -> str | None:
  """Why checkpoint `prefix` would not restore (None when it reads whole).

  Reads every tensor, so TensorFlow checks each one's CRC32C: a truncated
  or overwritten data file is caught here rather than at restore time.
  """
  try:
    reader = tf.train.load_checkpoint(prefix)
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)
  except Exception as e:  # pylint: disable=broad-except
    # OpError, or IndexError "Read less bytes than requested" (truncated).
    first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return f"{type(e).__name__}: {first_line}"
  return None


_READABLE = {}  # (prefix, size and mtime of its files) -> problem or None


def _file_stamp(prefix: str):
  """What changes when any file of checkpoint `prefix` is rewritten.

  Local files by `os.stat` (nanosecond mtime and ctime, inode): TF's
  `gfile.stat` reports a local file's mtime in whole seconds, so bytes
  overwritten within the second of a check would be taken as already read.
  """
  stamp = []
  for path in sorted(tf.io.gfile.glob(prefix + ".*")):
    if filesystems.is_url(path):
      stat = tf.io.gfile.stat(path)
      stamp.append((path, stat.length, stat.mtime_nsec))
    else:
      stat = os.stat(path)
      stamp.append((path, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns,
                    stat.st_ino))
  return prefix, tuple(stamp)


def _cached_problem(prefix: str) -> str | None:
  stamp = _file_stamp(prefix)
  if stamp not in _READABLE:
    _READABLE[stamp] = (checkpoint_problem(prefix) if stamp[1]
                        else "no files")
  return _READABLE[stamp]


def _candidate_checkpoints(directory: str) -> list[str]:
  """Checkpoint prefixes of `directory`, newest first."""
  state = None
  try:
    state = tf.train.get_checkpoint_state(directory)
  except (tf.errors.OpError, ValueError) as e:  # a damaged state file
    warnings.warn(f"{directory}/checkpoint cannot be read ({e}); looking "
                  "for checkpoints by name", WorkdirWarning)
  # `get_checkpoint_state` has already joined relative entries (which
  # CheckpointManager writes) to `directory`: joining them again named
  # <dir>/<dir>/ckpt-N for a relative workdir, a "damaged" checkpoint.
  listed = list(state.all_model_checkpoint_paths) if state else []
  if state and state.model_checkpoint_path not in listed:
    listed.append(state.model_checkpoint_path)
  found = [path[:-len(".index")] for path in
           tf.io.gfile.glob(os.path.join(directory, "*.index"))]

  def number(prefix):
    tail = prefix.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1

  return sorted(set(listed) | set(found), key=number, reverse=True)


def latest_checkpoint(workdir: str) -> str | None:
  """The newest checkpoint of the workdir that restores (None: none yet).

  The prefix is absolute for a local workdir, however it is spelled.

  A newer checkpoint that does not read back whole (a crash during its
  save, a damaged file) is passed over with a `WorkdirWarning`.

  Raises:
    ValueError: checkpoints exist but none of them reads back.
  """
  filesystems.prepare(workdir, "workdir")
  directory = checkpoint_dir(workdir)
  if not filesystems.is_url(directory):
    # One answer for a relative and an absolute spelling of a workdir.
    directory = os.path.abspath(directory)
  if not tf.io.gfile.isdir(directory):
    return None
  candidates = _candidate_checkpoints(directory)
  problems = []
  for prefix in candidates:
    problem = _cached_problem(prefix)
    if problem is None:
      for damaged, why in problems:
        warnings.warn(f"checkpoint {damaged} is damaged ({why}); using the "
                      f"older {prefix}", WorkdirWarning)
      return prefix
    problems.append((prefix, problem))
  if problems:
    raise ValueError(
        f"no checkpoint in {directory} restores: " + "; ".join(
            f"{prefix}: {why}" for prefix, why in problems))
  return None


def _process_start(pid: int) -> str | None:
  """The start time (clock ticks since boot) of `pid`; None if not known."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[19]
  except (OSError, IndexError):
    return None


def _is_alive(pid, start: str | None) -> bool:
  if not isinstance(pid, int) or pid <= 0:
    return False  # a damaged lock file
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # someone else's live process
  # A recycled pid belongs to a process that started at another time.
  return start is None or _process_start(pid) in (None, start)


class WorkdirLock:
  """`<workdir>/lock`: one training process writes a workdir at a time.

  `WorkdirLock(workdir)` takes the lock (raising `WorkdirLocked` if a live
  process holds it); `release()` or leaving the `with` block frees it.

  A local (or NFS) folder: the lock file is created exclusively; a lock
  left by a dead process of this host is taken over.

  An object store (`s3://`, `gs://`, ...), which has no exclusive create
  and no process to ask about: the lock object holds its owner and a
  heartbeat (UTC seconds) that a thread of the holder rewrites every
  `heartbeat_seconds`. A lock whose heartbeat is older than `stale_seconds`,
  or whose pid on this host is no longer running, is a dead trainer's and
  is taken over with a `WorkdirWarning`. A taker
  writes its own lock, waits `settle_seconds` and reads it back: of two
  trainers starting together the last writer holds it and the other
  refuses (the wait must exceed the time between one trainer's read and
  its write, a round trip). The hosts' clocks must agree to well within
  `stale_seconds`.
  """

  # An unreadable lock file older than this is a writer that died between
  # creating it and writing it.
  _UNREADABLE_STALE_SECONDS = 10.0
  HEARTBEAT_SECONDS = 30.0
  STALE_SECONDS = 300.0
  SETTLE_SECONDS = 2.0

  def __init__(self, workdir: str, *, heartbeat_seconds: float | None = None,
               stale_seconds: float | None = None,
               settle_seconds: float | None = None):
    self.path = os.path.join(workdir, LOCK_FILENAME)
    self.remote = filesystems.is_url(workdir)
    self.owner = {"pid": os.getpid(), "host": socket.gethostname(),
                  "process_start": _process_start(os.getpid()),
                  "started": datetime.datetime.now(
                      datetime.timezone.utc).isoformat(timespec="seconds")}
    self.heartbeat_seconds = heartbeat_seconds or self.HEARTBEAT_SECONDS
    self.stale_seconds = stale_seconds or self.STALE_SECONDS
    self.settle_seconds = (self.SETTLE_SECONDS if settle_seconds is None
                           else settle_seconds)
    self._stop = threading.Event()
    self._heartbeat = None
    tf.io.gfile.makedirs(workdir)
    if self.remote:
      self._take_remote(workdir)
      return
    for _ in range(20):
      if self._create():
        return
      holder = self._read()
      if holder is None:
        if self._age() < self._UNREADABLE_STALE_SECONDS:
          time.sleep(0.1)  # being written, or released meanwhile: retry
          continue
        holder = {"pid": "unknown (unreadable lock file)"}
      elif holder.get("host") != self.owner["host"]:
        raise WorkdirLocked(
            f"workdir {workdir!r} is being written by pid {holder.get('pid')} "
            f"on host {holder.get('host')!r} (since {holder.get('started')}): "
            f"stop it, or delete {self.path} if it is dead")
      elif _is_alive(holder.get("pid"), holder.get("process_start")):
        raise WorkdirLocked(
            f"workdir {workdir!r} is being written by pid {holder['pid']} on "
            f"this host (since {holder.get('started')}): one training process "
            "per workdir; stop it or use another workdir")
      warnings.warn(f"taking over the stale lock {self.path} of pid "
                    f"{holder.get('pid')}, which is no longer running",
                    WorkdirWarning)
      try:
        os.remove(self.path)
      except FileNotFoundError:
        pass
    raise WorkdirLocked(f"cannot take the lock {self.path}: other processes "
                        "keep taking it")

  # -- object stores ----------------------------------------------------------

  def _take_remote(self, workdir: str) -> None:
    self.owner["token"] = uuid.uuid4().hex
    holder = self._read_remote()
    if holder is not None:
      age = self._heartbeat_age(holder)
      who = (f"pid {holder.get('pid')} on host {holder.get('host')!r} (since "
             f"{holder.get('started')}, last heartbeat {age:.0f} s ago)")
      dead_here = (holder.get("host") == self.owner["host"] and not _is_alive(
          holder.get("pid"), holder.get("process_start")))
      if dead_here:  # no need to wait for its heartbeat to go stale
        warnings.warn(f"taking over the stale lock {self.path} of {who}, "
                      "which is no longer running", WorkdirWarning)
      elif age < self.stale_seconds:
        raise WorkdirLocked(
            f"workdir {workdir!r} is being written by {who}: one training "
            "process per workdir; stop it or use another workdir (a lock "
            f"whose heartbeat is older than {self.stale_seconds:.0f} s is "
            f"taken over; {self.path} holds it)")
      else:
        warnings.warn(f"taking over the stale lock {self.path} of {who}: no "
                      f"heartbeat for more than {self.stale_seconds:.0f} s",
                      WorkdirWarning)
    self._write_remote()
    time.sleep(self.settle_seconds)
    holder = self._read_remote()
    if holder is None or holder.get("token") != self.owner["token"]:
      who = ("nobody (it was removed)" if holder is None else
             f"pid {holder.get('pid')} on host {holder.get('host')!r}")
      raise WorkdirLocked(
          f"workdir {workdir!r}: another trainer took the lock {self.path} "
          f"at the same time and holds it now ({who}): one training process "
          "per workdir")
    self._heartbeat = threading.Thread(target=self._beat, daemon=True,
                                       name="workdir-lock-heartbeat")
    self._heartbeat.start()

  def _heartbeat_age(self, holder: dict) -> float:
    beat = holder.get("heartbeat")
    if not isinstance(beat, (int, float)):  # a damaged lock: its mtime
      try:
        beat = tf.io.gfile.stat(self.path).mtime_nsec / 1e9
      except tf.errors.NotFoundError:
        return float("inf")
      if not beat:  # no mtime either: take it as live (the message says
        return 0.0  # where the lock is, to delete it if it is dead)
    return time.time() - beat

  def _write_remote(self) -> None:
    with tf.io.gfile.GFile(self.path, "w") as f:
      f.write(json.dumps(dict(self.owner, heartbeat=time.time())))

  def _read_remote(self) -> dict | None:
    # An object store replaces an object whole; other file systems behind a
    # URL (file://, ram://) may show a lock half-written: read it again.
    for attempt in range(10):
      try:
        with tf.io.gfile.GFile(self.path) as f:
          holder = json.loads(f.read())
        if isinstance(holder, dict):
          return holder
      except tf.errors.NotFoundError:
        return None
      except json.JSONDecodeError:
        pass
      if attempt < 9:
        time.sleep(0.1)
    return {"pid": "unknown (unreadable lock object)"}

  def _beat(self) -> None:
    while not self._stop.wait(self.heartbeat_seconds):
      try:
        holder = self._read_remote()
        if holder is None or holder.get("token") != self.owner["token"]:
          logging.error("lost the workdir lock %s (now %s): another trainer "
                        "took it over", self.path, holder)
          return
        self._write_remote()
      except (tf.errors.OpError, OSError) as e:  # retried at the next beat
        logging.warning("heartbeat of the lock %s failed: %s", self.path, e)

  # -- local folders ----------------------------------------------------------

  def _age(self) -> float:
    try:
      return time.time() - os.path.getmtime(self.path)
    except FileNotFoundError:
      return 0.0

  def _create(self) -> bool:
    try:
      fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
      return False
    with os.fdopen(fd, "w") as f:
      json.dump(self.owner, f)
    return True

  def _read(self) -> dict | None:
    try:
      with open(self.path) as f:
        holder = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
      return None
    return holder if isinstance(holder, dict) else None

  def release(self):
    """Frees the lock (only if this process still holds it)."""
    if not self.remote:
      if self._read() == self.owner:
        os.remove(self.path)
      return
    self._stop.set()
    if self._heartbeat is not None:
      self._heartbeat.join()
      self._heartbeat = None
      holder = self._read_remote()
      if holder is not None and holder.get("token") == self.owner["token"]:
        tf.io.gfile.remove(self.path)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.release()


def latest_step(workdir: str) -> int | None:
  """The training step of the latest checkpoint (None without one), read
  without building the model."""
  checkpoint = latest_checkpoint(workdir)
  if checkpoint is None:
    return None
  return int(tf.train.load_variable(checkpoint,
                                    "step/.ATTRIBUTES/VARIABLE_VALUE"))


def restore_avc_model(workdir: str, checkpoint: str | None = None
                      ) -> tuple[config_lib.Config, keras.Model, int]:
  """Rebuilds the AVC network of a workdir and loads its weights.

  Args:
    workdir: a training workdir.
    checkpoint: a checkpoint prefix; default the latest in the workdir.

  Returns:
    (config, float32 `avc_network` with the trained weights, training step).

  Raises:
    FileNotFoundError: no config or no checkpoint in the workdir.
    finite.NonFiniteError: a weight of the checkpoint, or the logits of a
      probe pair, hold NaN or inf (`finite.check_model`).
  """
  config = read_config(workdir)
  checkpoint = checkpoint or latest_checkpoint(workdir)
  if checkpoint is None:
    raise FileNotFoundError(
        f"no checkpoint in {checkpoint_dir(workdir)}: training has not "
        "written one yet")
  model = model_lib.avc_network(config.model, config.image, config.audio)
  step = tf.Variable(0, dtype=tf.int64)
  status = tf.train.Checkpoint(model=model, step=step).restore(checkpoint)
  status.expect_partial()  # the optimizer and data state are not needed here
  status.assert_existing_objects_matched()
  finite.check_model(model, f"checkpoint {checkpoint}")
  return config, model, int(step.numpy())


def load_network(weights: str, random_config: config_lib.Config,
                 seed: int = 0) -> tuple[config_lib.Config, keras.Model, str]:
  """The AVC network named by a `--weights` value.

  Args:
    weights: "random" (untrained, the paper's "Ours random" row) or a
      training workdir.
    random_config: the architecture used for "random".
    seed: initialisation seed for "random".

  Returns:
    (config, avc_network, a description for result files).
  """
  if weights == "random":
    keras.utils.set_random_seed(seed)
    model = model_lib.avc_network(random_config.model, random_config.image,
                                  random_config.audio)
    return random_config, model, f"random (config {random_config.name}, seed {seed})"
  if not tf.io.gfile.isdir(weights):
    raise FileNotFoundError(
        f"weights={weights!r} is neither 'random' nor a training workdir")
  config, model, step = restore_avc_model(weights)
  return config, model, f"{weights} (step {step}, config {config.name})"


class WorkerCheckpoints:
  """Saves and resumes a run's `tf.train.Checkpoint` under any strategy.

  Every worker saves (the multi-worker contract: saving is collective); only
  the chief's copy lands in `<workdir>/checkpoints`, the other workers write
  to a scratch folder that `close` removes. Resuming reads the workdir's
  latest checkpoint on every worker.
  """

  def __init__(self, checkpoint: tf.train.Checkpoint, workdir: str,
               strategy: tf.distribute.Strategy, max_to_keep: int):
    self.checkpoint = checkpoint
    self.workdir = workdir
    self._scratch = None
    directory = checkpoint_dir(workdir)
    if not distribute.is_chief(strategy):
      self._scratch = tempfile.mkdtemp(
          prefix=f"l3_ckpt_{distribute.worker_name(strategy)}_")
      directory = self._scratch
    self._manager = tf.train.CheckpointManager(checkpoint, directory,
                                               max_to_keep=max_to_keep)

  def latest(self) -> str | None:
    return latest_checkpoint(self.workdir)

  def restore(self) -> str | None:
    """Restores the latest checkpoint of the workdir; returns it (or None)."""
    latest = self.latest()
    if latest is not None:
      self.checkpoint.restore(latest).assert_consumed()
    return latest

  def save(self, step: int) -> str | None:
    return self._manager.save(checkpoint_number=step)

  def discard(self, prefix: str) -> None:
    """Removes checkpoint `prefix` (written by this run) and its entry in
    the state file, which keeps naming the others."""
    directory = self._manager.directory
    state = tf.train.get_checkpoint_state(directory)
    # As `get_checkpoint_state` gives them: joined to `directory`, which
    # `update_checkpoint_state` takes away again for a relative one.
    remaining = [p for p in (state.all_model_checkpoint_paths if state else [])
                 if os.path.basename(p) != os.path.basename(prefix)]
    if remaining:
      tf.compat.v1.train.update_checkpoint_state(directory, remaining[-1],
                                                 remaining)
    elif tf.io.gfile.exists(os.path.join(directory, "checkpoint")):
      tf.io.gfile.remove(os.path.join(directory, "checkpoint"))
    for path in tf.io.gfile.glob(prefix + ".*"):
      tf.io.gfile.remove(path)

  def close(self):
    if self._scratch:
      shutil.rmtree(self._scratch, ignore_errors=True)
