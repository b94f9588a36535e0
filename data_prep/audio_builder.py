"""What the audio dataset builders (esc50, esc10, dcase2013_scenes,
urbansound8k) share.

Each clip is decoded whole with `l3_tf.data.media_audio.load_audio` (any format, mono,
48 kHz) into the stored form of `l3_tf.data.audio_example`. Policy: every
decodable clip is kept, short or silent ones too (a labelled clip is a valid
example, and the official fold sizes must stay intact); a file that cannot
be decoded or holds no audio is skipped with its reason (skip report, as for
videos).
"""

from data_prep import media_builder
from l3_tf.data import audio_example
from l3_tf.data import media
from l3_tf.data import media_audio

ESC_CITATION = ("K. J. Piczak. ESC: Dataset for Environmental Sound "
                "Classification. ACM Multimedia 2015.")


class AudioDecoder:
  """MediaItem -> the stored audio example (picklable, for Beam workers)."""

  def __call__(self, item: media_builder.MediaItem) -> dict:
    waveform = media_audio.load_audio(item.path, audio_example.SAMPLE_RATE_HZ)
    if waveform.shape[0] == 0:
      raise media.MediaError(item.path, "no audio samples")
    extra = dict(item.extra or {})
    fold = extra.pop("fold", None)
    return audio_example.make_example(waveform, item.key, item.source_path,
                                      item.label, fold=fold, extra=extra)


def label_names(rows: list[dict], index_column: str, name_column: str,
                source: str) -> list[str]:
  """Class names indexed by the class index of a metadata table.

  Args:
    rows: the table's rows.
    index_column / name_column: the columns of the class index and name.
    source: the table's name, for the errors.

  Raises:
    ValueError: an index with two names, or indices that are not 0..n-1.
  """
  by_index = {}
  for row in rows:
    index, name = int(row[index_column]), row[name_column]
    if by_index.setdefault(index, name) != name:
      raise ValueError(f"{source}: {index_column} {index} is both "
                       f"{by_index[index]!r} and {name!r}")
  if sorted(by_index) != list(range(len(by_index))):
    raise ValueError(f"{source}: {index_column}s {sorted(by_index)} are not "
                     f"0..{len(by_index) - 1}")
  return [by_index[i] for i in range(len(by_index))]


class AudioBuilder(media_builder.MediaBuilder, skip_registration=True):
  """Base of the audio builders."""

  def _decoder(self) -> AudioDecoder:
    return AudioDecoder()
