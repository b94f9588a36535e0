"""Object-storage paths (s3://, hdfs://, az://): the one door to tensorflow-io.

TensorFlow reads local paths and gs:// by itself; tensorflow-io adds the file
systems of S3 (and S3-compatible servers), HDFS and Azure. They are
registered lazily, here, the first time a path with such a scheme reaches a
public entry point (`data.data_dir`, a builder's manual dir, a workdir, an
export's output, `l3-embed --output_dir`): `prepare(path, what)`.

Where tensorflow-io is not installed (Python 3.13: it has no wheel there)
`prepare` fails at once with `FileSystemError` naming the path, its scheme
and what to install, instead of TensorFlow's "File system scheme 's3' not
implemented" deep inside a training step. For s3:// with `S3_ENDPOINT` set
(a MinIO, Ceph or moto server), the endpoint is also probed, because
tensorflow-io's S3 client retries an unreachable server for about a minute
and then reports a missing file (`exists` is False) rather than an error.

The S3 client is configured by environment variables read by tensorflow-io:
`S3_ENDPOINT` (host:port or URL of an S3-compatible server), `S3_USE_HTTPS`,
`S3_VERIFY_SSL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`.

A process that used tensorflow-io's S3 file system aborts at interpreter
exit ("pure virtual method called", exit code 134: its AWS SDK is torn down
after TensorFlow's), even when all its work succeeded. `run_main` (which the
binaries use in place of `absl.app.run`) ends such a process with
`os._exit` and the binary's own exit code once its output is flushed.
TFDS's own `tfds build` command cannot do that: building onto object
storage goes through `python -m experiments.tfds_cli build ...` (the same
command under `exit_preserving`), and a plain `tfds build` with such a
path fails at once (exit 1) saying so (`prepare`).
"""

import logging as std_logging
from typing import Any
import os
import socket
import sys
import traceback
import urllib.parse
from collections.abc import Callable

# Scheme -> what the error message tells users to install.
TFIO_SCHEMES = ("s3", "hdfs", "az")
TFIO_REQUIREMENT = "tensorflow-io==0.37.1"
# Schemes TensorFlow itself implements (no extra package needed).
BUILTIN_SCHEMES = ("", "file", "gs", "ram")
_PROBE_TIMEOUT_SECONDS = 3.0

_used_schemes: set[str] = set()
# Whether `exit_preserving` runs this process's main function.
_exit_preserved = False
# What builds datasets onto object storage with a truthful exit status.
TFDS_ENTRY_POINT = "python -m experiments.tfds_cli build"
_TFDS_CLI_MODULE = "tensorflow_datasets.scripts.cli.main"


class FileSystemError(ValueError):
  """A path whose file system is not available in this installation.

  Attributes:
    path: the offending path.
    scheme: its URL scheme ("s3", ...).
  """

  def __init__(self, path: str, scheme: str, message: str):
    self.path = path
    self.scheme = scheme
    super().__init__(message)


def scheme_of(path: str | os.PathLike) -> str:
  """The lower-case URL scheme of `path` ("" for a local path)."""
  path = os.fspath(path)
  if "://" not in path:
    return ""
  return path.split("://", 1)[0].lower()


def is_url(path: str | os.PathLike | None) -> bool:
  """Whether `path` is a URL (any scheme, `file://` too) rather than a local
  path: it must then go through `tf.io.gfile`, never `os` or `open`."""
  return path is not None and scheme_of(path) != ""


def is_object_store(path: str | os.PathLike | None) -> bool:
  """Whether `path` needs tensorflow-io (s3://, hdfs://, az://)."""
  return path is not None and scheme_of(path) in TFIO_SCHEMES


def used() -> bool:
  """Whether this process has registered a tensorflow-io file system."""
  return bool(_used_schemes)


def _load_tensorflow_io(path: str, scheme: str, what: str) -> None:
  try:
    import tensorflow_io  # pylint: disable=g-import-not-at-top,unused-import  # noqa: F401
  except ImportError as e:
    raise FileSystemError(
        path, scheme,
        f"{what}={path!r}: the {scheme}:// file system needs tensorflow-io, "
        f"which is not installed here ({e}); install {TFIO_REQUIREMENT} "
        "(wheels exist for Python 3.10-3.12 with TensorFlow 2.16.2, which "
        "`pip install l3_tf` picks on those Pythons; Python 3.13 has none), "
        "or use a local or gs:// path") from None


def _probe_s3_endpoint(path: str, what: str) -> None:
  """Fails fast when S3_ENDPOINT names a server that does not answer."""
  endpoint = os.environ.get("S3_ENDPOINT", "").strip()
  if not endpoint:
    return  # AWS itself: resolved and retried by the SDK.
  parsed = urllib.parse.urlsplit(
      endpoint if "://" in endpoint else f"//{endpoint}")
  https = (parsed.scheme == "https" if parsed.scheme else
           os.environ.get("S3_USE_HTTPS", "1") not in ("0", "false"))
  host, port = parsed.hostname, parsed.port or (443 if https else 80)
  try:
    with socket.create_connection((host, port),
                                  timeout=_PROBE_TIMEOUT_SECONDS):
      pass
  except OSError as e:
    raise FileSystemError(
        path, "s3",
        f"{what}={path!r}: the S3 endpoint S3_ENDPOINT={endpoint!r} does not "
        f"answer on {host}:{port} ({e}); start the server or fix "
        "S3_ENDPOINT") from None


def prepare(path: str | os.PathLike | None, what: str = "path"):
  """Makes the file system of `path` usable, or fails at once.

  Call it where a path enters the library (a config's data_dir, a workdir,
  an export's output); local and gs:// paths pass through untouched.

  Args:
    path: a path or URL; None passes (a default location).
    what: how the caller names it in errors ("data.data_dir", "workdir").

  Returns:
    `path`, unchanged.

  Raises:
    FileSystemError: tensorflow-io is needed and missing, the configured
      S3 endpoint does not answer, or TFDS's `tfds` command runs without
      `exit_preserving` (its exit status would be 134 whatever happened).
  """
  if path is None:
    return path
  text = os.fspath(path)
  scheme = scheme_of(text)
  if scheme not in TFIO_SCHEMES:
    return path
  if _TFDS_CLI_MODULE in sys.modules and not _exit_preserved:
    raise FileSystemError(
        text, scheme,
        f"{what}={text!r}: a plain `tfds build` onto {scheme}:// ends with "
        "exit status 134 (tensorflow-io aborts at exit) whether or not the "
        f"build succeeded; run the same command as `{TFDS_ENTRY_POINT} ...`, "
        "which exits with the build's own status")
  _load_tensorflow_io(text, scheme, what)
  _used_schemes.add(scheme)
  if scheme == "s3":
    _probe_s3_endpoint(text, what)
  return path


def _exit_code(code) -> int:
  """What the interpreter would make of `SystemExit(code)`."""
  if code is None:
    return 0
  if isinstance(code, int):
    return code
  print(code, file=sys.stderr)
  return 1


def run_main(main: Callable[[list[str]], int | None],
             argv: list[str] | None = None,
             flags_parser: Callable[[list[str]], Any] | None = None) -> None:
  """`absl.app.run(main)` whose exit code survives tensorflow-io's S3 abort
  (see `exit_preserving`)."""
  from absl import app  # pylint: disable=g-import-not-at-top
  if flags_parser is None:
    exit_preserving(lambda: app.run(main, argv=argv))
  else:
    exit_preserving(lambda: app.run(main, argv=argv,
                                    flags_parser=flags_parser))


def exit_preserving(run: Callable[[], Any]) -> None:
  """Runs a program's main (`run()`, which ends with `SystemExit` as
  `absl.app.run` does) so that its exit code survives tensorflow-io's S3
  abort.

  When no object-storage path was used this is exactly `run()`. Otherwise
  the process ends with `os._exit` after flushing stdout, stderr and
  logging, with the code the interpreter would have given: 0 on success,
  the `SystemExit` code, 1 for an uncaught exception (traceback printed).
  """
  global _exit_preserved
  _exit_preserved = True
  try:
    run()
    code = 0
  except SystemExit as e:
    if not used():
      raise
    code = _exit_code(e.code)
  except BaseException:  # pylint: disable=broad-except
    if not used():
      raise
    traceback.print_exc()
    code = 1
  if not used():
    sys.exit(code)
  std_logging.shutdown()
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)  # pylint: disable=protected-access
