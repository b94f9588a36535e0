"""The exit contract of every binary (binaries only): `run(main)`.

0 done; 1 an error (a bad value, a missing or broken file); 2 bad usage
(unknown flag, a flag value that does not parse, extra arguments). Either
failure writes `<program>: <message>` to stderr and no Python traceback;
the message names the bad value (the library's errors do, see STYLE.md).
"""

import functools
import os
import sys
from typing import Any, Callable

from absl import app
from absl import flags
import tensorflow as tf

from l3_tf.platform import filesystems

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# Set to 1 to get the traceback of an unexpected error (for bug reports).
TRACEBACK_ENV = "L3_TRACEBACK"


def program() -> str:
  """The running binary's name, e.g. "train_avc" or "l3-score"."""
  return os.path.splitext(os.path.basename(sys.argv[0] or "l3"))[0]


def fail(code: int, message: str):
  """Writes `<program>: <message>` to stderr and exits with `code`."""
  sys.stderr.write(f"{program()}: {message.rstrip()}\n")
  sys.stderr.flush()
  raise SystemExit(code)


def _first_line(error: BaseException) -> str:
  text = str(error).strip() or type(error).__name__
  return text.splitlines()[0]


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, exiting 2 with one line on a bad flag."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(EXIT_USAGE, f"usage error: {_first_line(e)} (see --helpshort)")


def guarded(main: Callable[[list[str]], Any]) -> Callable[[list[str]], Any]:
  """`main` under the exit contract (see `run`)."""

  @functools.wraps(main)
  def wrapped(argv):
    try:
      return main(argv)
    except SystemExit:
      raise
    except app.UsageError as e:
      fail(EXIT_USAGE, f"usage error: {e} (see --helpshort)")
    except KeyboardInterrupt:
      fail(EXIT_INTERRUPTED, "interrupted")
    except tf.errors.OpError as e:
      # TF's messages carry the graph's stack; the first line names the file.
      fail(EXIT_ERROR, f"error: {type(e).__name__}: {_first_line(e)}")
    except (ValueError, OSError) as e:  # FileNotFoundError, MediaError, ...
      fail(EXIT_ERROR, f"error: {e}")
    except Exception as e:  # pylint: disable=broad-except
      if os.environ.get(TRACEBACK_ENV) == "1":
        raise
      fail(EXIT_ERROR, f"unexpected error {type(e).__name__} (set "
           f"{TRACEBACK_ENV}=1 for the traceback): {str(e).strip()}")

  return wrapped


def run(main: Callable[[list[str]], Any], argv: list[str] | None = None):
  """`absl.app.run(main)` under the exit contract.

  Exit 2 with one line for a flag that does not parse or an
  `app.UsageError`; exit 1 with the error's message for a `ValueError`, an
  `OSError` (missing, unreadable or broken file) or a TensorFlow `OpError`
  (its first line); any other exception also exits 1 with one line (its
  traceback with `L3_TRACEBACK=1`). `SystemExit` raised by `main` passes.
  """
  # run_main: app.run whose exit code survives tensorflow-io's abort at
  # exit after S3 use.
  filesystems.run_main(guarded(main), argv=argv, flags_parser=parse_flags)
