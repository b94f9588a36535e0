"""Pure ops that draw audio-visual correspondence pairs (PAPER.md §1).

The unit of sampling is a *group* of G stored videos (consecutive videos of
the shuffled stream, see `l3_tf.data.input_pipeline`). From a group, `draw_pairs`
makes, for every video i and each of `pairs_per_video` slots:

  positive  a frame of video i at time t, and the 1-second window of video
            i's audio starting at sample s, with s <= t * sr <= s + clip
            (the frame lies inside the window; s uniform over the integer
            sample offsets that satisfy it and keep the window inside the
            audio);
  negative  another frame of video i, and a 1-second window (start uniform
            over the whole audio) of a partner video j whose `video_id`
            differs from i's. Partners come from a random rotation of the
            group, so when the group's ids are distinct every video's audio
            is used by exactly one negative per slot: neither the frame nor
            the sound alone tells a positive from a negative.

Frames are drawn uniformly among the *eligible* frames of their video, those
at a time t with 0 <= t <= audio_seconds (every such frame admits a full
window around it); positives and negatives use the same frame distribution.

Pairs come out as [pos, neg, pos, neg, ...]: every even-sized run that starts
at an even position holds exactly as many positives as negatives, so batches
of an even size cut from this stream are balanced exactly, not in
expectation.

All randomness is stateless and flows from one `[2]` int64 seed, so a group
and a seed always give the same pairs (eagerly, in `tf.function` and in
`Dataset.map`). Times are compared in samples, in float64:
`T = float64(frame_time) * sample_rate_hz`.
"""

import tensorflow as tf

from l3_tf.data import audio_params as audio_params_lib

POSITIVE = 1
NEGATIVE = 0


def eligible_frames(frame_times: tf.Tensor, num_audio_samples: tf.Tensor,
                    params: audio_params_lib.AudioParams = audio_params_lib.DEFAULT
                    ) -> tf.Tensor:
  """Which frames admit a full 1-second audio window that contains them.

  Args:
    frame_times: float32 `[..., num_frames]` presentation times, seconds.
    num_audio_samples: int `[...]` audio length of the same video(s).
    params: audio constants (sample rate, clip length).

  Returns:
    bool `[..., num_frames]`: 0 <= t * sr <= num_audio_samples and the audio
    holds at least one clip.
  """
  samples = tf.cast(frame_times, tf.float64) * params.sample_rate_hz
  num = tf.cast(num_audio_samples, tf.float64)[..., tf.newaxis]
  long_enough = num >= params.clip_samples
  return (samples >= 0.0) & (samples <= num) & long_enough


def positive_window_bounds(frame_time: tf.Tensor, num_audio_samples: tf.Tensor,
                           params: audio_params_lib.AudioParams = audio_params_lib.DEFAULT
                           ) -> tuple[tf.Tensor, tf.Tensor]:
  """Inclusive [lo, hi] of window starts s with s <= t * sr <= s + clip.

  Args:
    frame_time: float32 `[n]` frame times (each eligible, see
      `eligible_frames`).
    num_audio_samples: int64 `[n]` audio length of each frame's video.
    params: audio constants.

  Returns:
    int64 `[n]` lo and hi; lo <= hi for every eligible frame.
  """
  clip = params.clip_samples
  samples = tf.cast(frame_time, tf.float64) * params.sample_rate_hz  # [n]
  lo = tf.maximum(tf.cast(tf.math.ceil(samples - clip), tf.int64), 0)
  hi = tf.minimum(tf.cast(tf.math.floor(samples), tf.int64),
                  tf.cast(num_audio_samples, tf.int64) - clip)
  return lo, hi


def uniform_integers(lo: tf.Tensor, hi: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """One integer uniform in [lo, hi] (inclusive) per element, int64."""
  lo = tf.cast(lo, tf.int64)
  hi = tf.cast(hi, tf.int64)
  u = tf.random.stateless_uniform(tf.shape(lo), seed, dtype=tf.float64)
  span = hi - lo + 1
  offset = tf.cast(tf.floor(u * tf.cast(span, tf.float64)), tf.int64)
  return lo + tf.minimum(offset, span - 1)


def negative_partners(video_ids: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """For each video of a group, another member with a different video id.

  A rotation r uniform in [1, G-1] proposes partner (i + r) mod G, which is a
  derangement of the group. If that member shares i's id (the same video
  twice in a group, possible across epoch boundaries), the next offsets
  r + 1, r + 2, ... (cyclically over 1..G-1) are tried in turn.

  Args:
    video_ids: string `[G]`, G >= 2.
    seed: int64 `[2]`.

  Returns:
    int32 `[G]` partner indices; `video_ids[partner] != video_ids` everywhere.

  Raises:
    tf.errors.InvalidArgumentError: (at run time) some video has no member
      with a different id, i.e. the group holds a single distinct video.
  """
  size = tf.shape(video_ids)[0]
  tf.debugging.assert_greater_equal(
      size, 2, message="negative_partners needs a group of >= 2 videos")
  rotation = tf.random.stateless_uniform([], seed, minval=1, maxval=size,
                                         dtype=tf.int32)
  # Offsets in the order tried: rotation, rotation + 1, ..., wrapping in 1..G-1.
  offsets = (rotation - 1 + tf.range(size - 1)) % (size - 1) + 1  # [G-1]
  candidates = (tf.range(size)[:, tf.newaxis] + offsets[tf.newaxis]) % size  # [G, G-1]
  differs = tf.not_equal(tf.gather(video_ids, candidates),
                         video_ids[:, tf.newaxis])  # [G, G-1]
  tf.debugging.Assert(
      tf.reduce_all(tf.reduce_any(differs, axis=1)),
      ["pair sampling: a group of videos holds a single distinct video_id, so "
       "no negative can be formed; the input pipeline needs >= 2 distinct "
       "videos; group ids:", video_ids], summarize=16)
  first = tf.argmax(tf.cast(differs, tf.int32), axis=1, output_type=tf.int32)
  return tf.gather(candidates, first, batch_dims=1)  # [G]


def random_gain(waveform: tf.Tensor, max_delta: float, seed: tf.Tensor
                ) -> tuple[tf.Tensor, tf.Tensor]:
  """Scales one clip by a gain 1 + U(-max_delta, max_delta), capped at full scale.

  One gain for the whole clip (PAPER.md §3). If the drawn gain would push the
  clip's peak past full scale (|x| = 1), it is reduced to the available
  headroom 1 / peak instead of letting samples clip (as the public peer did);
  the gain therefore stays in [1 - max_delta, 1 + max_delta].

  Args:
    waveform: float32 `[num_samples]` in [-1, 1].
    max_delta: 0.1 in the paper; 0 disables the augmentation.
    seed: int64 `[2]`.

  Returns:
    (scaled waveform `[num_samples]`, float32 scalar gain applied).
  """
  gain = 1.0 + tf.random.stateless_uniform([], seed, -max_delta, max_delta)
  peak = tf.reduce_max(tf.abs(waveform))
  headroom = tf.math.divide_no_nan(1.0, peak)
  gain = tf.where(peak > 0.0, tf.minimum(gain, headroom), gain)
  return waveform * gain, gain


def _windows(samples: tf.Tensor, starts: tf.Tensor, length: int,
             num_videos: int | None, per_video: int) -> tf.Tensor:
  """`[P, length]` windows samples[s:s + length] for each start s.

  With a static group size (the input pipeline's padded batches), one slice
  per window; a gather of a `[P, length]` int64 index (6 MB per group of 8)
  cost more than the copies it makes.
  """
  if num_videos is None:
    index = starts[:, tf.newaxis] + tf.range(length, dtype=tf.int64)
    return tf.gather(samples, index)  # [P, length]
  return tf.stack([tf.slice(samples, starts[i:i + 1], [length])
                   for i in range(num_videos * per_video)])  # [P, length]


def draw_pairs(video_ids: tf.Tensor, frames: tf.Tensor, frame_times: tf.Tensor,
               num_frames: tf.Tensor, audio: tf.Tensor, num_samples: tf.Tensor,
               seed: tf.Tensor, pairs_per_video: int = 1,
               params: audio_params_lib.AudioParams = audio_params_lib.DEFAULT
               ) -> dict[str, tf.Tensor]:
  """Draws 2 * pairs_per_video pairs from each video of a group.

  The group comes padded (as `Dataset.padded_batch` makes it, which is much
  faster than a ragged batch of multi-megabyte videos) with true lengths.

  Args:
    video_ids: string `[G]`.
    frames: string `[G, max_frames]` encoded frames (not decoded here: only
      the frames that end up in a pair are ever decoded).
    frame_times: float32 `[G, max_frames]`.
    num_frames: int `[G]` frames of each video (the rest is padding).
    audio: int16 `[G, max_samples]` mono PCM at `params.sample_rate_hz`.
    num_samples: int `[G]` audio samples of each video. Every video must
      hold >= 1 clip of audio and >= 1 eligible frame (`eligible_frames`);
      the input pipeline filters the others out.
    seed: int64 `[2]`.
    pairs_per_video: positives (and as many negatives) drawn per video.
    params: audio constants.

  Returns:
    A dict of P = 2 * G * pairs_per_video rows, labels alternating 1, 0:
      frame: string `[P]` the encoded frame;
      waveform: int16 `[P, clip_samples]` the audio window;
      label: int32 `[P]` 1 = corresponds, 0 = not;
      seed: int64 `[P, 2]` per-pair seed for augmentation;
      frame_video_id, audio_video_id: string `[P]`;
      frame_index: int64 `[P]` index of the frame in its video;
      frame_time: float32 `[P]` its stored time, seconds;
      audio_start_sample: int64 `[P]` window start in its video's audio;
      audio_num_samples: int64 `[P]` length of that video's audio.
  """
  if pairs_per_video < 1:
    raise ValueError(f"pairs_per_video={pairs_per_video} must be >= 1")
  clip = params.clip_samples
  seeds = tf.random.experimental.stateless_split(
      tf.cast(seed, tf.int64), 3 + pairs_per_video)  # [3 + k, 2]
  num_videos = tf.shape(video_ids)[0]
  num_frames = tf.cast(num_frames, tf.int64)
  num_samples = tf.cast(num_samples, tf.int64)
  max_frames = tf.shape(frame_times, out_type=tf.int64)[1]
  max_samples = tf.shape(audio, out_type=tf.int64)[1]

  # Eligible frames, flattened row-major: their flat positions, per video.
  real = tf.range(max_frames)[tf.newaxis] < num_frames[:, tf.newaxis]  # [G, F]
  eligible = eligible_frames(frame_times, num_samples, params) & real  # [G, F]
  eligible_flat = tf.where(tf.reshape(eligible, [-1]))[:, 0]  # [sum E], by video
  eligible_count = tf.reduce_sum(tf.cast(eligible, tf.int64), axis=1)  # [G]
  tf.debugging.assert_positive(
      eligible_count, message="pair sampling: a video has no eligible frame "
      "(no audio of >= 1 clip around any frame); filter it out first")
  eligible_offset = tf.cumsum(eligible_count, exclusive=True)  # [G]

  # Layout: video i owns rows [2k*i, 2k*(i+1)), alternating pos / neg.
  per_video = 2 * pairs_per_video
  num_pairs = num_videos * per_video
  position = tf.range(num_pairs)
  frame_video = position // per_video  # [P]
  label = tf.where(position % 2 == 0, POSITIVE, NEGATIVE)  # [P] int32
  slot = (position % per_video) // 2  # [P]
  partners = tf.stack([negative_partners(video_ids, seeds[3 + m])
                       for m in range(pairs_per_video)], axis=1)  # [G, k]
  audio_video = tf.where(
      label == POSITIVE, frame_video,
      tf.gather_nd(partners, tf.stack([frame_video, slot], axis=1)))  # [P]

  # Frames: uniform among the eligible frames of the frame's video.
  pick = uniform_integers(tf.zeros([num_pairs], tf.int64),
                          tf.gather(eligible_count, frame_video) - 1,
                          seeds[0])  # [P]
  flat_frame = tf.gather(eligible_flat,
                         tf.gather(eligible_offset, frame_video) + pick)  # [P]
  frame_index = flat_frame % max_frames  # [P]
  frame_time = tf.gather(tf.reshape(frame_times, [-1]), flat_frame)  # [P]

  # Audio windows: around the frame (positives), anywhere (negatives).
  audio_length = tf.gather(num_samples, audio_video)  # [P] int64
  pos_lo, pos_hi = positive_window_bounds(frame_time, audio_length, params)
  is_positive = label == POSITIVE
  lo = tf.where(is_positive, pos_lo, tf.zeros_like(pos_lo))
  hi = tf.where(is_positive, pos_hi, audio_length - clip)
  start = uniform_integers(lo, hi, seeds[1])  # [P] int64
  first_sample = tf.cast(audio_video, tf.int64) * max_samples + start  # [P]
  waveform = _windows(tf.reshape(audio, [-1]), first_sample, clip,
                      video_ids.shape[0], per_video)  # [P, clip] int16

  return {
      "frame": tf.gather(tf.reshape(frames, [-1]), flat_frame),
      "waveform": waveform,
      "label": label,
      "seed": tf.random.experimental.stateless_split(seeds[2], num_pairs),
      "frame_video_id": tf.gather(video_ids, frame_video),
      "audio_video_id": tf.gather(video_ids, audio_video),
      "frame_index": frame_index,
      "frame_time": frame_time,
      "audio_start_sample": start,
      "audio_num_samples": audio_length,
  }
