"""The file and video methods of `embed.Embedder`: decoding audio, image and
video files with `l3_tf.data.media` and embedding what they hold.

`MediaFileMethods` is a base of `embed.Embedder` and only makes sense as
one: its methods call the array methods (`embed_audio`, `_embed_recordings`,
`_embed_image_stacks`, `_head`) and attributes (`audio_params`,
`image_params`) that `Embedder` defines. They are apart because they are a
concern of their own (containers, decoding, one failed file of many), not
to be used alone.
"""

import os
from typing import Sequence

import numpy as np

from l3_tf.data import media
from l3_tf.data import media_audio
from l3_tf.data import media_video
from l3_tf.serving import embed_inputs


class MediaFileMethods:
  """Embeds audio, image and video files (see the module docstring)."""

  def embed_audio_files(self, paths: Sequence[str | os.PathLike], *,
                        hop_seconds: float = embed_inputs.DEFAULT_HOP_SECONDS,
                        center: bool = True, embedding: int | str = 6144,
                        batch_size: int = embed_inputs.DEFAULT_BATCH_SIZE
                        ) -> list[embed_inputs.Embeddings | Exception]:
    """Embeds the first audio stream of each file (audio or video), the
    windows of all files sharing network calls.

    Args:
      paths: the files.
      hop_seconds, center, embedding, batch_size: as in `embed_audio`.

    Returns:
      Per path, in order: its `Embeddings`, or the exception that kept it
      from being embedded (`media.MediaError`: unreadable, no audio, no
      samples).

    Raises:
      ValueError: an argument outside its values (before any decoding).
    """
    paths = [os.fspath(path) for path in paths]
    embed_inputs.check_options(hop_seconds=hop_seconds, center=center,
                  batch_size=batch_size, params=self.audio_params)
    head = self._head(embedding, "audio")
    return self._embed_audio_paths(paths, hop_seconds=hop_seconds,
                                   center=center, head=head,
                                   batch_size=batch_size)

  def _embed_audio_paths(self, paths: list[str], *, hop_seconds: float,
                         center: bool, head, batch_size: int
                         ) -> list[embed_inputs.Embeddings | Exception]:
    results = [embed_inputs._try(self._load_audio, path) for path in paths]
    good = [i for i, r in enumerate(results) if not isinstance(r, Exception)]
    embedded = self._embed_recordings(
        [results[i] for i in good], [paths[i] for i in good],
        hop_seconds=hop_seconds, center=center, head=head,
        batch_size=batch_size)
    for i, result in zip(good, embedded):
      results[i] = result
    return results

  def embed_audio_file(self, path: str | os.PathLike, *,
                       hop_seconds: float = embed_inputs.DEFAULT_HOP_SECONDS,
                       center: bool = True, embedding: int | str = 6144,
                       batch_size: int = embed_inputs.DEFAULT_BATCH_SIZE) -> embed_inputs.Embeddings:
    """Embeds the first audio stream of any file PyAV reads (audio or video).

    Args:
      path: the file.
      hop_seconds, center, embedding, batch_size: as in `embed_audio`.

    Raises:
      media.MediaError: unreadable file, no audio or no samples.
    """
    return embed_inputs._raise_or(self.embed_audio_files(
        [path], hop_seconds=hop_seconds, center=center, embedding=embedding,
        batch_size=batch_size)[0])

  def _load_audio(self, path: str) -> np.ndarray:
    recording = media_audio.load_audio(path,
                                 sample_rate_hz=self.audio_params.sample_rate_hz)
    if recording.size == 0:
      raise media.MediaError(path, "the audio stream has no samples")
    return recording

  def embed_image_files(self, paths: Sequence[str | os.PathLike], *,
                        embedding: int | str = 8192,
                        batch_size: int = embed_inputs.DEFAULT_BATCH_SIZE
                        ) -> list[embed_inputs.Embeddings | Exception]:
    """Embeds image files (the first frame of anything PyAV reads); images
    of one size share network calls.

    Returns:
      Per path, in order: `Embeddings` with embedding [1, D] and timestamps
      [0.], or the exception that kept it from being embedded.
    """
    paths = [os.fspath(path) for path in paths]
    head = self._head(embedding, "image")
    embed_inputs.check_options(batch_size=batch_size)
    results = [embed_inputs._try(media_video.frames_at, path, [0.0]) for path in paths]
    good = [i for i, r in enumerate(results) if not isinstance(r, Exception)]
    for i in good:  # results[i]: [1, h, w, 3]
      embed_inputs._warn_constant(embed_inputs._count_constant(results[i]), 1, paths[i])
    # Sorted by size so that images of one size go through the model together.
    good.sort(key=lambda i: results[i].shape[1:])
    embedded = self._embed_image_stacks([results[i] for i in good], head,
                                        batch_size)
    for i, vectors in zip(good, embedded):
      results[i] = embed_inputs.Embeddings(vectors, np.zeros([1]))
    return results

  def embed_image_file(self, path: str | os.PathLike, *,
                       embedding: int | str = 8192) -> embed_inputs.Embeddings:
    """Embeds an image file (the first frame of anything PyAV reads).

    Returns:
      `Embeddings` with embedding [1, D] and timestamps [0.].
    """
    return embed_inputs._raise_or(self.embed_image_files([path], embedding=embedding)[0])

  def video_timestamps(self, path: str | os.PathLike, *,
                       hop_seconds: float = embed_inputs.DEFAULT_HOP_SECONDS,
                       center: bool = True) -> np.ndarray:
    """float64 [T]: the timestamps `embed_video` gives the video (those of
    its sound track's windows), without running the network."""
    path = os.fspath(path)
    embed_inputs.check_options(hop_seconds=hop_seconds, center=center,
                  params=self.audio_params)
    starts = embed_inputs.window_starts(self._load_audio(path).size, hop_seconds, center,
                           self.audio_params)
    return embed_inputs.window_timestamps(starts, self.audio_params)

  def embed_video_frames(self, path: str | os.PathLike,
                         timestamps: np.ndarray, *,
                         embedding: int | str = 8192,
                         batch_size: int = embed_inputs.DEFAULT_BATCH_SIZE) -> np.ndarray:
    """float32 [T, D]: image embeddings of the frames shown at `timestamps`
    (seconds; the last frame after the end), decoded as for training."""
    head = self._head(embedding, "image")
    embed_inputs.check_options(batch_size=batch_size)
    return embed_inputs._raise_or(self._embed_frames(
        [os.fspath(path)], [np.asarray(timestamps, np.float64)], head,
        batch_size)[0])

  def _embed_frames(self, paths: list[str], timestamps: list[np.ndarray],
                    head, batch_size: int
                    ) -> list[np.ndarray | Exception]:
    """Per video, float32 [T_i, D] embeddings of its frames at its
    timestamps [T_i] (or its exception). Frames are decoded
    `FRAMES_PER_DECODE` at a time and those of consecutive videos share
    network calls, so memory stays at about two decodes of frames."""
    results: list = [None] * len(paths)
    pieces = [[] for _ in paths]
    constant = [0] * len(paths)
    pending: list[tuple[int, np.ndarray]] = []  # (video, frames [n, h, w, 3])

    def run():
      embedded = self._embed_image_stacks([f for _, f in pending], head,
                                          batch_size)
      for (i, _), vectors in zip(pending, embedded):
        pieces[i].append(vectors)  # [n, D]
      pending.clear()

    for i, (path, times) in enumerate(zip(paths, timestamps)):
      try:
        if not media.probe(path).has_video:
          raise media.MediaError(path, "no video stream")
        for part in embed_inputs._batches(times.size, embed_inputs.FRAMES_PER_DECODE):
          frames = media_video.frames_at(
              path, times[part], short_side=self.image_params.resize_short_side)
          constant[i] += embed_inputs._count_constant(frames)  # [n, h, w, 3]
          pending.append((i, frames))
          if sum(f.shape[0] for _, f in pending) >= embed_inputs.FRAMES_PER_DECODE:
            run()
      except Exception as e:  # pylint: disable=broad-except
        results[i] = e  # this video only; the others go on
        pending[:] = [(j, f) for j, f in pending if j != i]
    run()
    for i, path in enumerate(paths):
      if results[i] is None:
        embed_inputs._warn_constant(constant[i], timestamps[i].size, path, "frames")
        results[i] = (np.concatenate(pieces[i]) if pieces[i] else
                      np.zeros((0, head.width), np.float32))
    return results

  def embed_video_files(self, paths: Sequence[str | os.PathLike], *,
                        hop_seconds: float = embed_inputs.DEFAULT_HOP_SECONDS,
                        center: bool = True, audio_embedding: int | str = 6144,
                        image_embedding: int | str = 8192,
                        batch_size: int = embed_inputs.DEFAULT_BATCH_SIZE
                        ) -> list[embed_inputs.VideoEmbeddings | Exception]:
    """Aligned audio and image embeddings of video files, the windows (and
    the frames) of all videos sharing network calls.

    Arguments as in `embed_video`.

    Returns:
      Per path, in order: its `VideoEmbeddings`, or the exception that kept
      it from being embedded (`media.MediaError`: unreadable file, no audio
      or no video stream).

    Raises:
      ValueError: an argument outside its values (before any decoding).
    """
    paths = [os.fspath(path) for path in paths]
    image_head = self._head(image_embedding, "image")  # before any decoding
    embed_inputs.check_options(hop_seconds=hop_seconds, center=center,
                  batch_size=batch_size, params=self.audio_params)
    audio_head = self._head(audio_embedding, "audio")
    results = [embed_inputs._try(embed_inputs.check_has_video, path) for path in paths]
    good = [i for i, r in enumerate(results) if not isinstance(r, Exception)]
    audio = self._embed_audio_paths([paths[i] for i in good],
                                    hop_seconds=hop_seconds, center=center,
                                    head=audio_head, batch_size=batch_size)
    for i, result in zip(good, audio):
      results[i] = result
    good = [i for i in good if not isinstance(results[i], Exception)]
    images = self._embed_frames([paths[i] for i in good],
                                [results[i].timestamps for i in good],
                                image_head, batch_size)
    for i, image in zip(good, images):
      results[i] = image if isinstance(image, Exception) else embed_inputs.VideoEmbeddings(
          results[i].embedding, image, results[i].timestamps)
    return results

  def embed_video(self, path: str | os.PathLike, *,
                  hop_seconds: float = embed_inputs.DEFAULT_HOP_SECONDS,
                  center: bool = True, audio_embedding: int | str = 6144,
                  image_embedding: int | str = 8192,
                  batch_size: int = embed_inputs.DEFAULT_BATCH_SIZE) -> embed_inputs.VideoEmbeddings:
    """Aligned audio and image embeddings of a video file.

    The timestamps are those of `embed_audio` on the video's sound track; at
    each, the image embedding uses the frame displayed at that time.

    Args:
      path: a video with a sound track.
      hop_seconds: time between consecutive embeddings.
      center: window 0 centred on t=0 (see `embed_audio`).
      audio_embedding: 512 or 6144; "shared" (both "shared" for an AVE-Net's
        shared space, where sounds and frames compare directly).
      image_embedding: 512 or 8192; "shared".
      batch_size: windows or frames per network call.

    Raises:
      media.MediaError: unreadable file, no audio or no video stream.
    """
    return embed_inputs._raise_or(self.embed_video_files(
        [path], hop_seconds=hop_seconds, center=center,
        audio_embedding=audio_embedding, image_embedding=image_embedding,
        batch_size=batch_size)[0])
