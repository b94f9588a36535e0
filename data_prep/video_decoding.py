"""The bad-input policy of the video builders, free of TensorFlow.

`decode_for_dataset` decodes one file with `l3_tf.data.media` and applies the
policy, so that every builder (and every Beam or process-pool worker) makes
the same decision for the same file. A file is either returned decoded or
rejected with a `MediaError` whose reason goes to the skip report:

  * unreadable, empty, truncated before the first frame, no video stream, no
    audio stream, a decoder error: whatever `l3_tf.data.media` raises;
  * shorter than `min_seconds` (default 1 s) after cutting to the common part
    of audio and video: the AVC sampler needs a whole 1-second audio window
    that contains the frame time, which does not exist in a shorter clip
    (padding would teach the network that silence belongs to the end of
    every short video);
  * fully silent (peak below `silence_threshold_dbfs`, default -60 dBFS, i.e.
    every int16 sample within +-32): such a video has no sound to
    correspond to, and its positives would be indistinguishable from
    negatives drawn from other silent videos. Quiet but not silent audio
    (the 6-channel bigbuckbunny clip peaks at -26 dBFS) and videos silent in
    some 1-second windows are kept.

Portrait (also phone videos stored rotated), odd-sized and variable-frame-
rate videos, multi-channel audio and any sample rate are built, not skipped
(`l3_tf.data.media` handles them). A file cut short is built from what decodes
when its container allows it (webm, mkv, avi: the common part of audio and
video, then the rules above); an mp4 whose index (moov) is missing cannot
be opened and is skipped as "not a readable media file".
"""

import dataclasses
import math
import os

from l3_tf.data import media
from l3_tf.data import media_video

# Extensions tried as videos; other files in a video folder are recorded in
# the skip report as "not a video file" (never silently ignored).
VIDEO_EXTENSIONS = media.VIDEO_EXTENSIONS


@dataclasses.dataclass(frozen=True)
class Policy:
  """What a video must satisfy to become an example.

  Attributes:
    min_seconds: minimum kept duration (audio and video both).
    skip_silent: whether fully silent videos are skipped.
    silence_threshold_dbfs: a video whose audio peak is below this is silent.
  """

  min_seconds: float = 1.0
  skip_silent: bool = True
  silence_threshold_dbfs: float = -60.0


def peak_dbfs(peak: float) -> float:
  return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def check_policy(decoded: media_video.DecodedVideo, path: str,
                 policy: Policy) -> None:
  """Raises MediaError if `decoded` violates `policy`."""
  if decoded.duration_seconds < policy.min_seconds:
    raise media.MediaError(
        path, f"too short: {decoded.duration_seconds:.3f} s of audio and "
        f"video < {policy.min_seconds:g} s (no whole 1-second AVC window)")
  level = peak_dbfs(decoded.audio_peak)
  if policy.skip_silent and level < policy.silence_threshold_dbfs:
    raise media.MediaError(
        path, f"silent audio: peak {level:.1f} dBFS < "
        f"{policy.silence_threshold_dbfs:g} dBFS")


def decode_for_dataset(path: str | os.PathLike, options: media_video.DecodeOptions,
                       policy: Policy) -> media_video.DecodedVideo:
  """Decodes one video and applies the policy.

  Raises:
    MediaError: the file is unusable or violates the policy; `reason` says
      why.
  """
  decoded = media_video.decode_video(path, options)
  check_policy(decoded, os.fspath(path), policy)
  return decoded


def is_video_path(path: str | os.PathLike,
                  extensions=VIDEO_EXTENSIONS) -> bool:
  return os.path.splitext(os.fspath(path))[1].lower() in extensions
