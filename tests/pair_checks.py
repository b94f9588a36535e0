"""The sampler's contract, checked on decoded batches (shared by the tests)."""

import numpy as np

CLIP = 48000


def collect(dataset, num_batches):
  """The first batches of a `with_metadata` dataset, as numpy."""
  batches = []
  for features, labels, metadata in dataset.take(num_batches):
    batches.append((
        {k: v.numpy() for k, v in features.items()}, labels.numpy(),
        {k: v.numpy() for k, v in metadata.items()}))
  return batches


def check_pair_properties(batches, audio_lengths: dict | None = None,
                          max_gain_delta: float = 0.1):
  """The sampler's contract on decoded batches; returns the pair count.

  Args:
    batches: (features, labels, metadata) numpy batches with metadata.
    audio_lengths: optional {video_id: stored audio length in samples} to
      check `audio_num_samples` against.
    max_gain_delta: the configured gain range.
  """
  count = 0
  for features, labels, meta in batches:
    size = len(labels)
    assert features["image"].shape == (size, 224, 224, 3)
    assert features["spectrogram"].shape == (size, 257, 199, 1)
    assert features["image"].min() >= -1.0 and features["image"].max() <= 1.0
    assert np.isfinite(features["spectrogram"]).all()
    # Exactly balanced in every batch.
    assert (labels == 1).sum() == (labels == 0).sum() == size // 2
    start = meta["audio_start_sample"].astype(np.float64)
    frame_samples = meta["frame_time"].astype(np.float64) * 48000
    num_samples = meta["audio_num_samples"]
    assert np.all(start >= 0) and np.all(start + CLIP <= num_samples)
    positive = labels == 1
    # Positives: same video, frame time inside the 1-second window.
    assert np.all(meta["frame_video_id"][positive]
                  == meta["audio_video_id"][positive])
    assert np.all(start[positive] <= frame_samples[positive])
    assert np.all(frame_samples[positive] <= start[positive] + CLIP)
    # Negatives: never the same video.
    assert np.all(meta["frame_video_id"][~positive]
                  != meta["audio_video_id"][~positive])
    # One gain per clip, within the range, never past full scale.
    assert np.all(np.abs(meta["gain"] - 1.0) <= max_gain_delta + 1e-6)
    assert np.all(meta["peak_after_gain"] <= 1.0 + 1e-6)
    if audio_lengths is not None:
      for vid, n in zip(meta["audio_video_id"], num_samples):
        assert audio_lengths[vid.decode()] == n
    count += size
  return count
