"""Differences between the two supported stacks, handled in one place.

The project runs unchanged on:

  * Python 3.10-3.12: TensorFlow 2.16.2, Keras 3, tensorflow-io 0.37.1,
    numpy 1.x, protobuf 4, PyAV 14-18;
  * Python 3.13: TensorFlow 2.20/2.21, Keras 3, numpy 2, protobuf 5/6,
    PyAV 19 (no tensorflow-io).

Every call whose spelling differs between those lives here, so that the rest
of the code reads as if there were one stack. This module imports nothing
heavy at import time (`l3_tf.data.media` uses it in decoding workers that must not
load TensorFlow): each helper imports what it needs.
"""

import functools
import inspect


@functools.cache
def av_open_read_kwargs() -> dict[str, str]:
  """Keyword arguments for `av.open(path)` that make metadata never fail.

  PyAV <= 18 decodes container metadata strictly as UTF-8 unless told
  `metadata_errors="ignore"` (a phone video with a Latin-1 title would
  otherwise be rejected). PyAV 19 removed that argument and always decodes
  with "surrogateescape", which never fails; passing it there is a TypeError.

  Returns:
    The extra keyword arguments for the installed PyAV (possibly empty).
  """
  import av  # pylint: disable=g-import-not-at-top
  try:
    parameters = inspect.signature(av.open).parameters
  except (TypeError, ValueError):  # A Cython function without a signature.
    parameters = None
  if parameters is not None:
    supported = "metadata_errors" in parameters
  else:
    supported = int(av.__version__.split(".")[0]) < 19
  return {"metadata_errors": "ignore"} if supported else {}
