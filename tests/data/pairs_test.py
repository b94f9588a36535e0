"""The pure pair-sampling ops: windows, partners, gain, and one drawn group."""

import numpy as np
import pytest
import tensorflow as tf

from l3_tf.data import pairs

SR = 48000
CLIP = 48000
SEED = tf.constant([5, 11], tf.int64)


def test_eligible_frames_need_a_full_window_around_them():
  times = tf.constant([[-0.1, 0.0, 0.5, 2.0, 2.5, 2.75]], tf.float32)
  mask = pairs.eligible_frames(times, tf.constant([2 * SR + SR // 2]))
  # t = 2.5 s is the end of 2.5 s of audio: the window [1.5, 2.5] holds it.
  assert mask.numpy().tolist() == [[False, True, True, True, True, False]]
  short = pairs.eligible_frames(times, tf.constant([SR - 1]))
  assert not short.numpy().any()


@pytest.mark.parametrize("time_s, num_samples, expected", [
    (0.0, 3 * SR, (0, 0)),              # at the start: only s = 0
    (0.5, 3 * SR, (0, SR // 2)),        # s in [t - 1 s, t], clipped at 0
    (1.5, 3 * SR, (SR // 2, 3 * SR // 2)),
    (3.0, 3 * SR, (2 * SR, 2 * SR)),    # at the end: only the last window
    (2.9, 3 * SR, (round(1.9 * SR), 2 * SR)),
    (0.75, SR, (0, 0)),                 # 1 s of audio: one window
])
def test_positive_window_bounds(time_s, num_samples, expected):
  lo, hi = pairs.positive_window_bounds(tf.constant([time_s], tf.float32),
                                        tf.constant([num_samples], tf.int64))
  got = (int(lo[0]), int(hi[0]))
  # float32 times: allow one sample of rounding on an inexact bound.
  assert abs(got[0] - expected[0]) <= 1 and abs(got[1] - expected[1]) <= 1
  t = float(np.float32(time_s)) * SR
  assert got[0] <= t <= got[0] + CLIP and got[1] <= t <= got[1] + CLIP


def test_uniform_integers_cover_the_inclusive_range():
  lo = tf.fill([4000], tf.constant(3, tf.int64))
  hi = tf.fill([4000], tf.constant(6, tf.int64))
  values = pairs.uniform_integers(lo, hi, SEED).numpy()
  assert set(values.tolist()) == {3, 4, 5, 6}
  assert np.all(np.abs(np.bincount(values)[3:] - 1000) < 150)
  single = pairs.uniform_integers(tf.constant([7]), tf.constant([7]), SEED)
  assert single.numpy().tolist() == [7]


def test_negative_partners_distinct_ids_give_a_derangement():
  ids = tf.constant([b"a", b"b", b"c", b"d", b"e"])
  for seed in range(20):
    partner = pairs.negative_partners(ids, tf.constant([seed, 1], tf.int64))
    partner = partner.numpy()
    assert sorted(partner.tolist()) == list(range(5))  # a permutation
    assert np.all(partner != np.arange(5))


def test_negative_partners_skip_repeated_videos():
  # The same video twice in a group (an epoch boundary): never paired.
  ids = tf.constant([b"a", b"b", b"a", b"a"])
  for seed in range(30):
    partner = pairs.negative_partners(ids, tf.constant([seed, 2], tf.int64))
    got = tf.gather(ids, partner).numpy()
    assert np.all(got != ids.numpy())


def test_negative_partners_fail_on_a_single_distinct_video():
  with pytest.raises(tf.errors.InvalidArgumentError, match="single distinct"):
    pairs.negative_partners(tf.constant([b"a", b"a", b"a"]), SEED)


def test_random_gain_range_and_headroom():
  rng = np.random.default_rng(0)
  quiet = tf.constant(rng.uniform(-0.5, 0.5, CLIP).astype(np.float32))
  gains = []
  for seed in range(200):
    scaled, gain = pairs.random_gain(quiet, 0.1, tf.constant([seed, 3], tf.int64))
    gains.append(float(gain))
    # One gain for the whole clip.
    # The same two float32 numbers multiplied: one rounding (u) each.
    np.testing.assert_allclose(scaled.numpy(), quiet.numpy() * float(gain),
                               rtol=2 * 2.0**-24)
  gains = np.array(gains)
  assert gains.min() >= 0.9 and gains.max() <= 1.1
  assert gains.min() < 0.95 and gains.max() > 1.05  # the range is used
  # A clip at 0.98 of full scale: gains above 1/0.98 are cut to the headroom.
  loud = tf.constant(np.array([0.98, -0.5, 0.1], np.float32))
  peaks = []
  for seed in range(200):
    scaled, gain = pairs.random_gain(loud, 0.1, tf.constant([seed, 4], tf.int64))
    peaks.append(float(tf.reduce_max(tf.abs(scaled))))
    assert 0.9 <= float(gain) <= 1 / 0.98 + 1e-6
  assert max(peaks) <= 1.0 + 1e-6 and max(peaks) > 0.999
  # Silence stays silence; a zero range is the identity.
  silent, gain = pairs.random_gain(tf.zeros([10]), 0.1, SEED)
  assert float(tf.reduce_max(tf.abs(silent))) == 0.0 and 0.9 <= float(gain) <= 1.1
  same, gain = pairs.random_gain(quiet, 0.0, SEED)
  assert float(gain) == 1.0


def _group():
  """Three videos: A (3 s, 4 fps), B (1 s), C (2 s, frames from 0.1 s to 3 s)."""
  rng = np.random.default_rng(1)
  lengths = {"A": 3 * SR, "B": SR, "C": 2 * SR}
  times = {"A": np.arange(13) / 4, "B": np.arange(5) / 4,
           "C": 0.1 + np.arange(12) / 4}
  audio = {k: rng.integers(-20000, 20000, n).astype(np.int16)
           for k, n in lengths.items()}
  frames = {k: [f"{k}{i}".encode() for i in range(len(t))]
            for k, t in times.items()}
  names = ["A", "B", "C"]
  # Padded as Dataset.padded_batch pads: "" frames, time 0, silence.
  group = dict(
      video_ids=tf.constant([n.encode() for n in names]),
      frames=tf.ragged.constant([frames[n] for n in names]).to_tensor(""),
      frame_times=tf.ragged.constant([times[n].astype(np.float32)
                                      for n in names],
                                     dtype=tf.float32).to_tensor(),
      num_frames=tf.constant([len(times[n]) for n in names]),
      audio=tf.ragged.constant([audio[n] for n in names],
                               dtype=tf.int16).to_tensor(),
      num_samples=tf.constant([len(audio[n]) for n in names]))
  return group, audio, times


def _check_pairs(drawn, audio, times, pairs_per_video):
  num = 3 * 2 * pairs_per_video
  label = drawn["label"].numpy()
  assert label.tolist() == [1, 0] * (num // 2)
  for p in range(num):
    frame_vid = drawn["frame_video_id"][p].numpy().decode()
    audio_vid = drawn["audio_video_id"][p].numpy().decode()
    index = int(drawn["frame_index"][p])
    start = int(drawn["audio_start_sample"][p])
    t = float(drawn["frame_time"][p])
    # Metadata agrees with the content it describes.
    assert drawn["frame"][p].numpy() == f"{frame_vid}{index}".encode()
    assert t == np.float32(times[frame_vid][index])
    np.testing.assert_array_equal(drawn["waveform"][p].numpy(),
                                  audio[audio_vid][start:start + CLIP])
    assert int(drawn["audio_num_samples"][p]) == len(audio[audio_vid])
    # The frame's time admits a window inside its own video's audio.
    assert 0 <= t * SR <= len(audio[frame_vid])
    if label[p] == 1:
      assert audio_vid == frame_vid
      assert start <= np.float64(np.float32(t)) * SR <= start + CLIP
    else:
      assert audio_vid != frame_vid
    assert 0 <= start <= len(audio[audio_vid]) - CLIP


@pytest.mark.parametrize("pairs_per_video", [1, 2])
def test_draw_pairs_eagerly(pairs_per_video):
  group, audio, times = _group()
  for seed in range(8):
    drawn = pairs.draw_pairs(**group, seed=tf.constant([seed, 0], tf.int64),
                             pairs_per_video=pairs_per_video)
    _check_pairs(drawn, audio, times, pairs_per_video)


def test_draw_pairs_same_in_dataset_map_and_seeded():
  group, audio, times = _group()
  seed = tf.constant([42, 0], tf.int64)
  eager = pairs.draw_pairs(**group, seed=seed)
  mapped = next(iter(tf.data.Dataset.from_tensors(group).map(
      lambda g: pairs.draw_pairs(**g, seed=seed))))
  for key in eager:
    np.testing.assert_array_equal(eager[key].numpy(), mapped[key].numpy())
  other = pairs.draw_pairs(**group, seed=tf.constant([43, 0], tf.int64))
  assert not np.array_equal(eager["audio_start_sample"].numpy(),
                            other["audio_start_sample"].numpy())


def test_draw_pairs_same_with_unknown_group_size():
  """A static group size slices each window; an unknown one gathers: equal."""
  group, audio, times = _group()
  seed = tf.constant([7, 0], tf.int64)
  static = pairs.draw_pairs(**group, seed=seed, pairs_per_video=2)
  signature = {key: tf.TensorSpec([None] * value.shape.rank, value.dtype)
               for key, value in group.items()}
  dynamic = tf.function(
      lambda g: pairs.draw_pairs(**g, seed=seed, pairs_per_video=2),
      input_signature=[signature])(group)
  for key in static:
    np.testing.assert_array_equal(static[key].numpy(), dynamic[key].numpy())
  _check_pairs(dynamic, audio, times, 2)


def test_positive_windows_spread_over_all_valid_starts():
  """Starts are uniform over [max(0, t - 1 s), min(t, end - 1 s)]."""
  group, audio, times = _group()
  draw = tf.function(lambda seed: pairs.draw_pairs(**group, seed=seed))
  starts_at_half_second = []
  for seed in range(300):
    drawn = draw(tf.constant([seed, 9], tf.int64))
    for p in np.flatnonzero(drawn["label"].numpy() == 1):
      if (drawn["frame_video_id"][p].numpy() == b"A"
          and float(drawn["frame_time"][p]) == 1.5):
        starts_at_half_second.append(int(drawn["audio_start_sample"][p]))
  starts = np.array(starts_at_half_second)
  assert len(starts) >= 10
  assert starts.min() >= SR // 2 and starts.max() <= 3 * SR // 2
  assert starts.max() - starts.min() > SR // 2  # not stuck at one offset
