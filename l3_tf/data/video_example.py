"""The stored form of one video: the contract between builders and pipelines.

Every video dataset builder in `data_prep/` writes examples with these
features, and the AVC input pipeline reads them. One example per video:

  video_id          Text     stable id (builders derive example keys from it)
  source_path       Text     the file it was decoded from (relative to the
                             manual dir when there is one)
  label             ClassLabel (labelled datasets only)
  frames            Sequence(Image, jpeg) frames, short side 256, aspect kept
  frame_times       float32 [num_frames] presentation time of each frame, s
  audio             int16 [num_samples] mono at 48 kHz (raw PCM stored as
                    bytes: the pipeline decodes it in-graph with no codec;
                    see `audio_feature`)
  duration_seconds  float32 duration of the kept part (min(video, limit))

Frames are sampled at `DEFAULT_FRAMES_PER_SECOND` (see its comment). Reading
code should pass `decoders=SKIP_FRAME_DECODING` so that only the frames it
uses are JPEG-decoded.
"""

import numpy as np
import tensorflow_datasets as tfds

# 4 frames per second: a 1-second audio window then always contains 4
# candidate frames, consecutive frames 0.25 s apart are near-duplicates for
# the AVC task anyway, and a 10-second clip stores 40 JPEGs (~1 MB at
# quality 90) next to its 0.96 MB of audio. Configurable per builder.
DEFAULT_FRAMES_PER_SECOND = 4.0
# The paper uses the first 10 seconds of each video.
DEFAULT_MAX_SECONDS = 10.0
SAMPLE_RATE_HZ = 48000
SHORT_SIDE = 256
AUDIO_SCALE = 32768.0  # int16 -> float32 in [-1, 1)

SKIP_FRAME_DECODING = {"frames": tfds.decode.SkipDecoding()}


def audio_feature() -> tfds.features.Tensor:
  """int16 [num_samples] mono PCM at 48 kHz, serialized as raw bytes.

  Not `tfds.features.Audio`: it stores int16 samples as an int64 varint list
  (6 bytes per sample), and its `encoding=BYTES` option fails to serialize
  in TFDS 4.9. A BYTES-encoded Tensor takes 2 bytes per sample and is parsed
  in-graph with tf.io.decode_raw; the decoded tensor is the same int16
  [num_samples]. Measured on 10 s of audio (one core, best of 5 runs;
  parsing = `deserialize_example` in a tf.data map): serialize 68 ms ->
  0.8 ms, parse 4.9 ms -> 0.45 ms.
  """
  return tfds.features.Tensor(
      shape=(None,), dtype=np.int16, encoding=tfds.features.Encoding.BYTES,
      doc=f"mono PCM, {SAMPLE_RATE_HZ} Hz, int16 (x / {AUDIO_SCALE:g} -> "
          "[-1, 1))")


def video_features(label_names: list[str] | None = None,
                   labelled: bool = False) -> tfds.features.FeaturesDict:
  """The FeaturesDict of a video dataset.

  Args:
    label_names: class names; gives the dataset a `label` feature.
    labelled: give it a `label` whose names the builder sets once it has
      listed its files (e.g. sub-folder names), when label_names is None.
  """
  features = {
      "video_id": tfds.features.Text(),
      "source_path": tfds.features.Text(),
      "frames": tfds.features.Sequence(
          tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg")),
      "frame_times": tfds.features.Tensor(shape=(None,), dtype=np.float32),
      "audio": audio_feature(),
      "duration_seconds": tfds.features.Scalar(dtype=np.float32),
  }
  if label_names is not None:
    features["label"] = tfds.features.ClassLabel(names=label_names)
  elif labelled:
    features["label"] = tfds.features.ClassLabel()
  return tfds.features.FeaturesDict(features)


def audio_to_int16(waveform: np.ndarray) -> np.ndarray:
  """float [-1, 1] -> int16 PCM (clipped; codecs overshoot full scale)."""
  scaled = np.round(np.asarray(waveform, np.float32) * AUDIO_SCALE)
  return np.clip(scaled, -32768, 32767).astype(np.int16)


def make_example(decoded, video_id: str, source_path: str,
                 label: int | str | None = None) -> dict:
  """The feature dict of one video from an `l3_tf.data.media.DecodedVideo`.

  Args:
    decoded: the decoded video (JPEG frames, frame times, 48 kHz audio).
    video_id: its stable id.
    source_path: the file it came from (relative to the manual dir).
    label: class index or name; None for unlabelled datasets. -1 means "no
      label" in a labelled dataset (TFDS ClassLabel convention).

  Returns:
    A dict ready for `video_features(...).encode_example`.
  """
  if decoded.sample_rate_hz != SAMPLE_RATE_HZ:
    raise ValueError(f"decoded audio at {decoded.sample_rate_hz} Hz, the "
                     f"stored form is {SAMPLE_RATE_HZ} Hz")
  example = {
      "video_id": video_id,
      "source_path": source_path,
      "frames": list(decoded.frames),
      "frame_times": np.asarray(decoded.frame_times, np.float32),
      "audio": audio_to_int16(decoded.audio),
      "duration_seconds": np.float32(decoded.duration_seconds),
  }
  if label is not None:
    example["label"] = label
  return example
