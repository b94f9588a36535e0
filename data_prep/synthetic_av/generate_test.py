"""The generator: distinct classes, determinism, and audio-visual alignment.

The alignment test decodes written mp4 files back with `l3_tf.data.media` (the
path every builder uses) and checks, from the decoded audio and frames
alone, that each object's sound is present exactly while the ground truth
says the object is visible, and that its pixels are inside its box.
"""

import colorsys
import itertools

import numpy as np
import pytest

from data_prep.synthetic_av import generate
from l3_tf.data import media
from l3_tf.data import media_audio
from l3_tf.data import media_video

# SNR fixed high: these tests check alignment, not difficulty.
_PARAMS = generate.GeneratorParams(
    num_classes=8, seconds=4.0, objects_per_video=(2, 3),
    snr_db_range=(10.0, 10.0), gap_probability=1.0)


def test_classes_differ_in_every_cue():
  specs = generate.class_specs(8)
  for field in ("name", "shape", "colour", "pitch_hz"):
    values = [getattr(s, field) for s in specs]
    assert len(set(values)) == 8, field
  # No class fundamental within 4% of a harmonic (2..8) of another class.
  for a, b in itertools.permutations(specs, 2):
    for h in range(2, 9):
      assert abs(b.pitch_hz / (h * a.pitch_hz) - 1) > 0.04, (a.name, b.name, h)


def test_params_are_validated():
  with pytest.raises(ValueError, match="objects_per_video"):
    generate.GeneratorParams(num_classes=2, objects_per_video=(1, 3))
  with pytest.raises(ValueError, match="seconds"):
    generate.GeneratorParams(seconds=0.5)
  with pytest.raises(ValueError, match="snr_db_range"):
    generate.GeneratorParams(snr_db_range=(10, 0))


def test_render_is_a_pure_function_of_seed_split_index():
  params = generate.GeneratorParams(seconds=1.0, num_classes=4)
  f1, a1, t1 = generate.render_video(3, "train", 5, params)
  f2, a2, t2 = generate.render_video(3, "train", 5, params)
  np.testing.assert_array_equal(f1, f2)
  np.testing.assert_array_equal(a1, a2)
  assert t1 == t2
  f3, _, _ = generate.render_video(3, "test", 5, params)
  assert not np.array_equal(f1, f3)
  _, a4, _ = generate.render_video(4, "train", 5, params)
  assert not np.array_equal(a1, a4)


def _band_energy(audio, pitch_hz, hop=240, window=2048):
  """Magnitude at the pitch in 43 ms windows every 5 ms: ([n], centres)."""
  n = (audio.shape[0] - window) // hop + 1
  starts = np.arange(n) * hop
  frames = np.stack([audio[s:s + window] for s in starts]) * np.hanning(window)
  spectrum = np.abs(np.fft.rfft(frames, axis=1))
  freqs = np.fft.rfftfreq(window, 1.0 / media.SAMPLE_RATE_HZ)
  band = np.abs(freqs - pitch_hz) <= max(0.02 * pitch_hz, 25.0)
  return spectrum[:, band].max(axis=1), (starts + window / 2) / 48000.0


def _inside(intervals, t):
  return any(start <= t < stop for start, stop in intervals)


def _distance_to_edge(intervals, t):
  return min(min(abs(t - start), abs(t - stop)) for start, stop in intervals)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
  out = tmp_path_factory.mktemp("synthetic")
  truth = generate.write_dataset(out, {"train": 3}, seed=7, params=_PARAMS)
  return out, truth


def test_sound_present_exactly_while_object_visible(written):
  out, truth = written
  specs = generate.class_specs(_PARAMS.num_classes)
  margin = 0.04  # half the analysis window, plus the 5 ms ramps
  checked = 0
  for video_id, video in truth["videos"].items():
    audio = media_audio.load_audio(out / video["path"])
    assert audio.shape[0] == pytest.approx(4.0 * 48000, abs=2)
    for obj in video["objects"]:
      spans = generate.sounding_intervals(video, obj["class"])
      assert spans == sorted(obj["intervals"])
      energy, times = _band_energy(audio, specs[obj["class"]].pitch_hz)
      inside = np.array([_inside(spans, t) for t in times])
      clear = np.array([_distance_to_edge(spans, t) > margin for t in times])
      on_level = np.percentile(energy[inside & clear], 90)
      threshold = 0.2 * on_level
      # Never audible while invisible.
      assert energy[~inside & clear].max() < threshold, (video_id, obj)
      for start, stop in spans:
        during = (times >= start) & (times < stop)
        # Audible from the moment it appears (every rhythm starts "on")...
        onset = times[during & (energy > threshold)].min()
        assert onset - start < margin, (video_id, obj, start, onset)
        # ... and most of the time it is visible (pulses: duty 0.6).
        assert (energy[during & clear] > threshold).mean() > 0.5
      checked += 1
  assert checked >= 6  # 3 videos x 2..3 objects


def _class_pixels(frame, colour):
  """bool [h, w]: saturated pixels of the class's hue (the objects only)."""
  rgb = frame.astype(np.float32) / 255.0
  mx, mn = rgb.max(-1), rgb.min(-1)
  saturation = (mx - mn) / np.maximum(mx, 1e-6)
  hue_target = colorsys.rgb_to_hsv(*(np.asarray(colour) / 255.0))[0]
  r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
  delta = np.maximum(mx - mn, 1e-6)
  hue = np.where(mx == r, ((g - b) / delta) % 6,
                 np.where(mx == g, (b - r) / delta + 2, (r - g) / delta + 4))
  hue = hue / 6.0
  hue_distance = np.minimum(np.abs(hue - hue_target),
                            1 - np.abs(hue - hue_target))
  return (saturation > 0.6) & (mx > 0.25) & (hue_distance < 0.03)


def _overlap(a, b):
  return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_object_drawn_exactly_while_visible_and_inside_its_box(written):
  out, truth = written
  specs = generate.class_specs(_PARAMS.num_classes)
  for video_id, video in truth["videos"].items():
    decoded = media_video.decode_video(
        out / video["path"], media_video.DecodeOptions(max_seconds=None,
                                                 short_side=None))
    np.testing.assert_allclose(decoded.frame_times, np.arange(16) / 4.0,
                               atol=1e-6)
    frames = media_video.frames_at(out / video["path"], decoded.frame_times)
    for t, frame in zip(decoded.frame_times, frames):
      visible = {o["class"]: o["box"] for o in
                 generate.visible_objects(video, float(t), normalized=False)}
      for obj in video["objects"]:
        k = obj["class"]
        pixels = _class_pixels(frame, specs[k].colour)
        assert (k in visible) == _inside(obj["intervals"], float(t))
        if k in visible:
          x0, y0, x1, y1 = visible[k]
          in_box = pixels[y0:y1, x0:x1].sum()
          occluded = any(_overlap(visible[k], box)
                         for other, box in visible.items() if other != k)
          if not occluded:
            assert in_box > 0.1 * (x1 - x0) * (y1 - y0), (video_id, t, k)
          # Chroma subsampling (4:2:0) smears colour by about a pixel.
          near_box = pixels[max(0, y0 - 2):y1 + 2, max(0, x0 - 2):x1 + 2].sum()
          assert pixels.sum() - near_box < 20, (video_id, t, k)
        else:
          assert pixels.sum() < 20, (video_id, t, k)


def test_visible_objects_normalised_boxes(written):
  _, truth = written
  video = next(iter(truth["videos"].values()))
  for found in generate.visible_objects(video, 0.0):
    x0, y0, x1, y1 = found["box"]
    assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1


def test_class_level_ceiling_counts_same_class_negatives():
  truth = {"videos": {"a": {"label": 0}, "b": {"label": 0},
                      "c": {"label": 1}}}
  # pairs: a-a positive, a-b same-class negative, a-c and c-b different-class
  # negatives, b-b positive (ids as the pipeline gives them: bytes).
  result = generate.class_level_ceiling(
      [b"a", b"a", b"a", b"c", b"b"], [b"a", b"b", b"c", b"b", b"b"],
      [1, 0, 0, 0, 1], truth)
  assert result == {"ceiling": 4 / 5, "same_class_negatives": 1,
                    "negatives": 3, "pairs": 5}
  with pytest.raises(ValueError, match="'d' is not in the ground truth"):
    generate.class_level_ceiling(["a"], ["d"], [0], truth)
  with pytest.raises(ValueError, match="label=2"):
    generate.class_level_ceiling(["a"], ["b"], [2], truth)
  with pytest.raises(ValueError, match="2 frame ids, 1 audio ids"):
    generate.class_level_ceiling(["a", "b"], ["a"], [1], truth)
