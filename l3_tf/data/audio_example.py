"""The stored form of one labelled audio clip (ESC-50, ESC-10, DCASE 2013,
UrbanSound8K).

  clip_id           Text     stable id (the example key)
  source_path       Text     the file it was decoded from, relative to the
                             manual dir
  audio             int16 [num_samples] mono at 48 kHz, the whole clip
  duration_seconds  float32  num_samples / 48000
  label             ClassLabel
  fold              int32    official cross-validation fold (ESC,
                             UrbanSound8K)
  (builder's own)            more features of one dataset (UrbanSound8K:
                             fsid, salience, start_seconds, end_seconds)

Why raw 48 kHz PCM rather than the original files (ogg, wav at 44.1 kHz):
the audio tower takes 1-second windows at 48 kHz, and the transfer
experiment cuts every clip into 1-second sub-clips several times (5 folds,
several models). Decoding and resampling once at build time, with one decoder
for every format (PyAV) and a high-quality polyphase resampler
(`l3_tf.data.media_audio.resample`), is faster and better than doing it in every epoch
in-graph (tensorflow-io decodes some formats but not Vorbis-in-Ogg robustly,
and its resampler is slow); int16 PCM is then decoded in-graph with a cast.
The price is disk: 96 kB per second of audio (ESC-50: 0.96 GB).
"""

import numpy as np
import tensorflow_datasets as tfds

from l3_tf.data import video_example

SAMPLE_RATE_HZ = video_example.SAMPLE_RATE_HZ
AUDIO_SCALE = video_example.AUDIO_SCALE


def audio_features(label_names: list[str] | None = None,
                   with_fold: bool = False,
                   extra: dict[str, tfds.features.FeatureConnector] | None
                   = None) -> tfds.features.FeaturesDict:
  """The FeaturesDict of a labelled audio dataset.

  Args:
    label_names: the class names; None leaves them to be set by the builder
      once it has listed its files.
    with_fold: add the `fold` feature.
    extra: more features of the dataset (UrbanSound8K: `fsid`, ...).
  """
  features = {
      "clip_id": tfds.features.Text(),
      "source_path": tfds.features.Text(),
      "audio": video_example.audio_feature(),
      "duration_seconds": tfds.features.Scalar(dtype=np.float32),
      "label": tfds.features.ClassLabel(names=label_names),
  }
  if with_fold:
    features["fold"] = tfds.features.Scalar(dtype=np.int32)
  for name, feature in (extra or {}).items():
    if name in features:
      raise ValueError(f"extra feature {name!r} is a standard one")
    features[name] = feature
  return tfds.features.FeaturesDict(features)


def make_example(waveform: np.ndarray, clip_id: str, source_path: str,
                 label: int | str, fold: int | None = None,
                 extra: dict | None = None) -> dict:
  """The feature dict of one clip from a float waveform at 48 kHz (`extra`:
  the values of `audio_features`' extra features)."""
  audio = video_example.audio_to_int16(waveform)
  example = {
      "clip_id": clip_id,
      "source_path": source_path,
      "audio": audio,
      "duration_seconds": np.float32(audio.shape[0] / SAMPLE_RATE_HZ),
      "label": label,
  }
  if fold is not None:
    example["fold"] = np.int32(fold)
  example.update(extra or {})
  return example
