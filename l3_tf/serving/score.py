"""Audio-visual correspondence of one frame and one sound: behind `l3-score`.

A `Pair` is what the network sees, decoded from files: an image and the
1-second window of sound centred on `at_seconds` (zeros outside the
recording), at 48 kHz. `load_pair` builds it from an image file and an
audio file, or from one video; `score_pair` runs the fusion head. Other
readers of a pair (a localisation heatmap, for example) take the same
`Pair`, so they see exactly the inputs that were scored: `load_localizer` and
`save_heatmap` draw where in the image the sound comes from
(`l3_tf.analysis.localize`).
"""

from typing import NamedTuple

import numpy as np

from l3_tf.analysis import localize
from l3_tf.analysis import overlays
from l3_tf.data import audio_params as audio_params_lib
from l3_tf.data import media_audio
from l3_tf.data import media_video
from l3_tf.serving import embed as embed_lib
from l3_tf.serving import embed_inputs
from l3_tf.serving import export as export_lib
from l3_tf.training import workdir as workdir_lib

# Without --at_seconds, an audio file is scored on its first second.
DEFAULT_AUDIO_SECONDS = 0.5


class Pair(NamedTuple):
  """One (image, sound) pair decoded for scoring.

  Attributes:
    image: uint8 [h, w, 3] at its decoded size (the model resizes and crops).
    waveform: float32 [48000] mono at 48 kHz, the window centred on
      `at_seconds`.
    at_seconds: centre of the sound window (and, for a video, the time of the
      frame), seconds.
    image_source: the file the image came from.
    audio_source: the file the sound came from.
  """

  image: np.ndarray
  waveform: np.ndarray
  at_seconds: float
  image_source: str
  audio_source: str


def load_pair(*, image: str | None = None, audio: str | None = None,
              video: str | None = None, at_seconds: float | None = None,
              params: audio_params_lib.AudioParams = audio_params_lib.DEFAULT
              ) -> Pair:
  """Decodes a pair from `image` + `audio` files, or from one `video`.

  Args:
    image: an image file (or any file PyAV reads; its first frame).
    audio: any file with an audio stream.
    video: a video with sound; the frame displayed at `at_seconds` and the
      sound around it.
    at_seconds: centre of the 1-second sound window; required for a video,
      default 0.5 (the first second) for an audio file.
    params: the audio front end of the model.

  Raises:
    ValueError: a wrong combination of arguments.
    media.MediaError: a file cannot be decoded.
  """
  if video is not None:
    if image is not None or audio is not None:
      raise ValueError(f"video={video!r} is given: image= and audio= must not be")
    if at_seconds is None:
      raise ValueError(f"video={video!r}: at_seconds is required (the time of "
                       "the frame and of the sound window's centre)")
    image, audio = video, video
    frame_time = at_seconds
  elif image is None or audio is None:
    raise ValueError(f"image={image!r}, audio={audio!r}: give both (or video=)")
  else:
    frame_time = 0.0
    at_seconds = DEFAULT_AUDIO_SECONDS if at_seconds is None else at_seconds
  if not np.isfinite(at_seconds) or at_seconds < 0:
    raise ValueError(f"at_seconds={at_seconds}: expected a time >= 0")
  frame = media_video.frames_at(image, [frame_time])[0]  # [h, w, 3]
  recording = media_audio.load_audio(audio, sample_rate_hz=params.sample_rate_hz)
  duration = recording.size / params.sample_rate_hz
  if at_seconds > duration:
    raise ValueError(f"at_seconds={at_seconds} is after the end of the sound "
                     f"of {audio} ({duration:.3f} s)")
  starts = embed_inputs.starts_for_centres([at_seconds], params)
  waveform = embed_inputs.extract_windows(recording, starts,
                                       params.clip_samples)[0]  # [48000]
  return Pair(frame, waveform, float(at_seconds), str(image), str(audio))


def score_pair(embedder: embed_lib.Embedder, pair: Pair) -> float:
  """P(the image and the sound of `pair` correspond).

  Raises:
    ValueError: the sound window holds NaN or inf samples (a float file);
      the export would give NaN.
  """
  bad = int(np.count_nonzero(~np.isfinite(pair.waveform)))
  if bad:
    raise ValueError(f"audio {pair.audio_source!r}: the window centred on "
                     f"{pair.at_seconds} s holds {bad} NaN or infinite "
                     "sample(s)")
  return float(embedder.score(pair.image, pair.waveform))


def load_localizer(path: str) -> localize.Localizer:
  """The heatmap maker of a training workdir.

  Heatmaps need the Keras model (the vision trunk runs fully convolutionally
  over the whole frame); an export's signatures score the central crop only.

  Raises:
    ValueError: `path` is a SavedModel.
    FileNotFoundError: `path` is not a training workdir.
  """
  if export_lib.is_saved_model(path):
    raise ValueError(
        f"{path} is a SavedModel: heatmaps need the training workdir it was "
        "exported from (the export's signatures score the central crop, not "
        "every location); pass --model=WORKDIR")
  config, avc, _ = workdir_lib.restore_avc_model(path)
  return localize.Localizer(avc, config.model, config.image, config.audio)


def save_heatmap(localizer: localize.Localizer, pair: Pair,
                 path: str) -> dict:
  """Writes a PNG of where in `pair.image` the sound of `pair` comes from.

  Returns:
    {"heatmap": path, "peak": [x, y] the centre of the strongest cell as
    fractions of the image's width and height, "heatmap_probability": the
    pair's P(corresponds) from the localiser's model}.
  """
  heatmap = localizer(pair.image, pair.waveform)
  overlays.save_image_overlay(
      heatmap.frame, heatmap.pixels, path,
      title=f"{pair.image_source}\nsound of {pair.audio_source} at "
            f"{pair.at_seconds:.2f} s: P(corresponds) "
            f"{heatmap.probability:.3f}")
  return {"heatmap": path,
          "peak": [round(v, 4) for v in localize.peak_position(heatmap)],
          "heatmap_probability": round(heatmap.probability, 6)}
