"""l3_tf.data.media: decoding, resampling, frame selection, errors, alignment.

Test media are written at test time by `data_prep.dummy_media`: frame i of a
video is a flat grey of level `frame_level(i)`, so a test can tell which
frame came back; channel c of the audio is a sine at a known pitch.
"""

import math

import numpy as np
import pytest

from data_prep import dummy_media
from l3_tf.data import media
from l3_tf.data import media_audio
from l3_tf.data import media_video


def _peak_hz(audio, rate=48000):
  spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.shape[0])))
  return np.fft.rfftfreq(audio.shape[0], 1.0 / rate)[np.argmax(spectrum)]


def _level(jpeg_or_image):
  if isinstance(jpeg_or_image, bytes):
    import io  # pylint: disable=g-import-not-at-top
    from PIL import Image  # pylint: disable=g-import-not-at-top
    jpeg_or_image = np.asarray(Image.open(io.BytesIO(jpeg_or_image)))
  return float(np.mean(jpeg_or_image))


def _frame_index(level):
  """Inverse of dummy_media.frame_level for the first 56 frames."""
  return int(round((level - 16) / 4))


def test_defaults_agree_with_the_stored_contract():
  from l3_tf.data import video_example  # pylint: disable=g-import-not-at-top
  assert media.SAMPLE_RATE_HZ == video_example.SAMPLE_RATE_HZ == 48000
  assert media.DEFAULT_FRAMES_PER_SECOND == (
      video_example.DEFAULT_FRAMES_PER_SECOND)
  assert media.DEFAULT_MAX_SECONDS == video_example.DEFAULT_MAX_SECONDS
  assert media.SHORT_SIDE == video_example.SHORT_SIDE


# ------------------------------------------------------------------ resample


def test_resample_matches_the_analytic_sine():
  rate_in, rate_out = 44100, 48000
  t_in = np.arange(rate_in) / rate_in
  t_out = np.arange(rate_out) / rate_out
  out = media_audio.resample(np.sin(2 * np.pi * 1000 * t_in), rate_in, rate_out)
  assert out.dtype == np.float32 and out.shape == (rate_out,)
  expected = np.sin(2 * np.pi * 1000 * t_out)
  middle = slice(1000, -1000)  # the FIR's edges see zeros beyond the ends
  assert np.max(np.abs(out[middle] - expected[middle])) < 1e-3


@pytest.mark.parametrize("rate_in,rate_out", [(16000, 48000), (22050, 48000),
                                              (48000, 16000), (8000, 48000)])
def test_resample_lengths_and_no_aliasing(rate_in, rate_out):
  n = rate_in // 2
  x = np.random.default_rng(0).standard_normal(n)
  y = media_audio.resample(x, rate_in, rate_out)
  assert y.shape == (round(n * rate_out / rate_in),)
  if rate_out < rate_in:  # a tone above the new Nyquist must vanish
    t = np.arange(n) / rate_in
    high = media_audio.resample(np.sin(2 * np.pi * 0.45 * rate_in * t), rate_in,
                          rate_out)
    assert np.sqrt(np.mean(high[500:-500]**2)) < 1e-3


def test_resample_batch_axis_and_identity():
  x = np.random.default_rng(1).standard_normal([3, 4410]).astype(np.float32)
  y = media_audio.resample(x, 44100, 48000)
  assert y.shape == (3, 4800)
  np.testing.assert_allclose(y[1], media_audio.resample(x[1], 44100, 48000),
                             atol=1e-6)
  assert media_audio.resample(x, 48000, 48000) is x
  with pytest.raises(ValueError, match="rate_in=0"):
    media_audio.resample(x, 0, 48000)


# ------------------------------------------------------------------ audio


@pytest.mark.parametrize("ext,rate,channels", [
    ("wav", 16000, 1), ("flac", 44100, 2), ("ogg", 44100, 2),
    ("mp3", 22050, 2), ("m4a", 48000, 6)])
def test_load_audio_any_format_to_48k_mono(tmp_path, ext, rate, channels):
  path = dummy_media.write_audio(tmp_path / f"a.{ext}", seconds=1.0,
                                 sample_rate=rate, channels=channels)
  audio = media_audio.load_audio(path)
  assert audio.dtype == np.float32 and audio.ndim == 1
  # Codecs pad or delay a little (mp3 without gapless info: ~50 ms).
  assert abs(audio.shape[0] - 48000) <= 0.06 * 48000
  # Mono = mean of the channels: each channel's pitch at 1/channels.
  spectrum = np.abs(np.fft.rfft(audio[:48000 - 4800] * np.hanning(43200)))
  freqs = np.fft.rfftfreq(43200, 1 / 48000)
  pitches = [(440.0, 660.0, 880.0, 1100.0, 1320.0, 1540.0)[c]
             for c in range(channels)
             if not (channels == 6 and c == 3)]  # AAC low-passes the LFE
  peaks = [spectrum[np.argmin(np.abs(freqs - f))] for f in pitches]
  assert min(peaks) > 0.5 * max(peaks)
  assert spectrum.max() == pytest.approx(max(peaks), rel=0.05)
  probe = media.probe(path)
  assert probe.has_audio and not probe.has_video
  assert probe.sample_rate_hz == rate and probe.num_channels == channels


def test_load_audio_max_seconds_and_other_rate(tmp_path):
  path = dummy_media.write_audio(tmp_path / "a.wav", seconds=2.0,
                                 sample_rate=44100)
  audio = media_audio.load_audio(path, sample_rate_hz=16000, max_seconds=0.5)
  assert audio.shape == (8000,)
  assert _peak_hz(audio, 16000) == pytest.approx(440, abs=3)


def test_load_audio_of_a_video(tmp_path):
  path = dummy_media.write_video(tmp_path / "v.mp4", seconds=1.0)
  audio = media_audio.load_audio(path)
  assert audio.shape == (48000,)
  assert _peak_hz(audio) == pytest.approx(440, abs=2)


# ------------------------------------------------------------------ video


def test_decode_video_samples_the_displayed_frame_at_4_fps(tmp_path):
  path = dummy_media.write_video(tmp_path / "v.mp4", seconds=2.0, fps=25)
  decoded = media_video.decode_video(path)
  # 25 fps: the frame displayed at k/4 s is frame floor(25 k / 4).
  expected = [math.floor(25 * k / 4) for k in range(8)]
  np.testing.assert_allclose(decoded.frame_times,
                             np.array(expected) / 25.0, atol=1e-6)
  assert [_frame_index(_level(j)) for j in decoded.frames] == expected
  assert decoded.duration_seconds == pytest.approx(2.0)
  assert decoded.audio.shape == (96000,)
  assert (decoded.frame_height, decoded.frame_width) == (256, 341)
  assert decoded.source.frames_per_second == pytest.approx(25)


def test_decode_video_options(tmp_path):
  path = dummy_media.write_video(tmp_path / "v.mp4", seconds=3.0, fps=10,
                                 width=64, height=48)
  decoded = media_video.decode_video(path, media_video.DecodeOptions(
      frames_per_second=2.0, max_seconds=2.0, short_side=None))
  np.testing.assert_allclose(decoded.frame_times, [0.0, 0.5, 1.0, 1.5],
                             atol=1e-6)
  assert decoded.duration_seconds == pytest.approx(2.0)
  assert decoded.audio.shape == (96000,)
  assert (decoded.frame_height, decoded.frame_width) == (48, 64)
  everything = media_video.decode_video(path, media_video.DecodeOptions(max_seconds=None))
  assert everything.duration_seconds == pytest.approx(3.0)
  assert len(everything.frames) == 12
  with pytest.raises(ValueError, match="frames_per_second=0"):
    media_video.DecodeOptions(frames_per_second=0)


@pytest.mark.parametrize("ext", ["webm", "avi", "mkv"])
def test_decode_other_containers(tmp_path, ext):
  path = dummy_media.write_video(tmp_path / f"v.{ext}", seconds=1.5, fps=25,
                                 channels=2)
  decoded = media_video.decode_video(path)
  # Vorbis (webm) and mp3 (avi) pad the end and their containers do not
  # say by how much: up to ~50 ms more audio, which the duration keeps.
  assert decoded.duration_seconds == pytest.approx(1.5, abs=0.05)
  assert decoded.audio.shape[0] == round(decoded.duration_seconds * 48000)
  sample_times = [k / 4 for k in range(8) if k / 4 < decoded.duration_seconds]
  assert len(decoded.frames) == len(sample_times)
  assert decoded.frame_times[-1] < decoded.duration_seconds
  if ext != "avi":  # PyAV's AVI muxing of the test file drops frame 1's pts
    expected = [math.floor(25 * t) for t in sample_times]
    assert [_frame_index(_level(j)) for j in decoded.frames] == expected


def test_skipping_unneeded_frames_changes_nothing_stored(tmp_path,
                                                        monkeypatch):
  # H.264 with 3 non-reference B-frames between references, 30 fps: most
  # B-frames are never displayed at a 4 fps sample time and are dropped.
  import av  # pylint: disable=g-import-not-at-top
  path = dummy_media.write_video(tmp_path / "b.mp4", seconds=1.8, fps=30,
                                 width=64, height=48, b_frames=3)
  with av.open(path) as container:
    types = [str(f.pict_type)[-1] for f in container.decode(video=0)]
  assert types.count("3") > 20  # B-frames (PictureType 3)
  decoded = {"exact": 0, "fast": 0}
  original = media_video._frame_time  # pylint: disable=protected-access

  def counting(name):
    def frame_time(*args):
      decoded[name] += 1
      return original(*args)
    return frame_time

  monkeypatch.setattr(media_video, "_frame_time", counting("exact"))
  exact = media_video.decode_video(path, media_video.DecodeOptions(
      skip_unneeded_frames=False))
  monkeypatch.setattr(media_video, "_frame_time", counting("fast"))
  fast = media_video.decode_video(path)
  assert decoded["fast"] < 0.7 * decoded["exact"]  # frames were dropped
  np.testing.assert_array_equal(exact.frame_times, fast.frame_times)
  assert exact.frames == fast.frames
  expected = [math.floor(30 * k / 4) for k in range(8)]
  assert [_frame_index(_level(j)) for j in fast.frames] == expected


def test_portrait_odd_size_and_variable_frame_rate(tmp_path):
  portrait = media_video.decode_video(dummy_media.write_video(
      tmp_path / "p.mp4", seconds=1.0, width=90, height=160))
  assert (portrait.frame_height, portrait.frame_width) == (455, 256)
  odd = media_video.decode_video(dummy_media.write_video(
      tmp_path / "o.mp4", seconds=1.0, width=161, height=97))
  assert (odd.frame_height, odd.frame_width) == (256, 425)
  times = [0.0, 0.04, 0.08, 0.5, 0.55, 1.2, 1.21, 1.6, 1.95]
  vfr = media_video.decode_video(dummy_media.write_video(
      tmp_path / "v.mp4", seconds=2.0, frame_times=times))
  # Sample times 0, .25, ..., 1.75 show frames 0, 2, 3, 4, 4, 6, 6, 7.
  np.testing.assert_allclose(vfr.frame_times,
                             [0.0, 0.08, 0.5, 0.55, 1.21, 1.6], atol=1e-6)
  assert [_frame_index(_level(j)) for j in vfr.frames] == [0, 2, 3, 4, 6, 7]


def test_frames_at_returns_the_displayed_frame(tmp_path):
  path = dummy_media.write_video(tmp_path / "v.mp4", seconds=1.0, fps=10,
                                 width=32, height=24)
  times = [0.55, 0.0, 0.1, 0.0999, 5.0, 0.3, 0.3]
  frames = media_video.frames_at(path, times)
  assert frames.shape == (7, 24, 32, 3) and frames.dtype == np.uint8
  assert [_frame_index(_level(f)) for f in frames] == [5, 0, 1, 0, 9, 3, 3]
  resized = media_video.frames_at(path, [0.2], short_side=256)
  assert resized.shape == (1, 256, 341, 3)
  with pytest.raises(ValueError, match="empty"):
    media_video.frames_at(path, [])


def test_frames_at_late_times_seeks_to_the_right_frames(tmp_path):
  path = dummy_media.write_video(tmp_path / "v.mp4", seconds=10.0, fps=10,
                                 width=32, height=24, keyframe_interval=15)
  import av  # pylint: disable=g-import-not-at-top
  with av.open(path) as container:
    keyframes = [p.pts for p in container.demux(video=0) if p.is_keyframe]
  assert len(keyframes) > 5  # so that the seek lands mid-file
  times = [7.35, 9.0, 8.0, 9.99, 6.1]
  frames = media_video.frames_at(path, times)
  expected = [73, 90, 80, 99, 61]
  assert [_frame_index(_level(f)) for f in frames] == [i % 56
                                                       for i in expected]


def test_display_rotation_is_applied(tmp_path):
  import av  # pylint: disable=g-import-not-at-top
  import fractions  # pylint: disable=g-import-not-at-top
  path = str(tmp_path / "rotated.mp4")
  with av.open(path, "w") as container:
    stream = container.add_stream("libx264", rate=10)
    stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
    if not hasattr(stream, "set_display_rotation"):
      pytest.fail("PyAV cannot write a display rotation: needs PyAV >= 14")
    # Counter-clockwise 90: a phone's portrait video stored landscape.
    stream.set_display_rotation(90)
    for i in range(5):
      image = np.zeros([96, 160, 3], np.uint8)
      image[:, :80] = 255  # left half white
      frame = av.VideoFrame.from_ndarray(image, format="rgb24")
      frame.pts, frame.time_base = i, fractions.Fraction(1, 10)
      container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
  image = media_video.frames_at(path, [0.0])[0]
  assert image.shape == (160, 96, 3)  # displayed upright: portrait
  # Rotated 90 degrees counter-clockwise, the left half is now at the bottom.
  assert image[-60:].mean() > 240 and image[:60].mean() < 15


def test_audio_and_frames_share_one_timeline(tmp_path):
  # A beep and a white flash both at 0.6 s, in each container.
  for ext in ("mp4", "webm", "mkv", "avi"):
    path = dummy_media.write_video(tmp_path / f"sync.{ext}", seconds=1.5,
                                   fps=25, beep_at=0.6, flash_at=0.6)
    decoded = media_video.decode_video(path, media_video.DecodeOptions(
        frames_per_second=25, max_seconds=None))
    onset = np.flatnonzero(np.abs(decoded.audio) > 0.1)[0] / 48000
    if ext == "avi":
      # mp3's encoder delay (~25 ms) cannot be signalled in AVI: every
      # decoder plays such audio that much late. Not correctable here.
      assert 0.6 <= onset <= 0.63, ext
    else:
      assert onset == pytest.approx(0.6, abs=0.005), ext
    flashes = [t for t, j in zip(decoded.frame_times, decoded.frames)
               if _level(j) > 240]
    if ext != "avi":  # see test_decode_other_containers
      assert flashes[0] == pytest.approx(0.6, abs=1e-3), ext


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("name,write,reason", [
    ("missing.mp4", None, "cannot read the file"),
    ("empty.mp4", lambda p: p.write_bytes(b""), "empty file"),
    ("noise.mp4", lambda p: p.write_bytes(b"\x00\x17" * 999),
     "not a readable media file"),
    ("silent_film.mp4",
     lambda p: dummy_media.write_video(p, seconds=1.0, audio=False),
     "no audio stream"),
    ("radio.mp4",
     lambda p: dummy_media.write_video(p, seconds=1.0, video=False),
     "no video stream"),
])
def test_decode_video_errors_name_the_file_and_reason(tmp_path, name, write,
                                                      reason):
  path = tmp_path / name
  if write is not None:
    write(path)
  with pytest.raises(media.MediaError, match=reason) as error:
    media_video.decode_video(path)
  assert error.value.path == str(path)
  assert reason in error.value.reason
  assert isinstance(error.value, ValueError)


def test_load_audio_and_frames_at_errors(tmp_path):
  video_only = dummy_media.write_video(tmp_path / "v.mp4", seconds=1.0,
                                       audio=False)
  with pytest.raises(media.MediaError, match="no audio stream"):
    media_audio.load_audio(video_only)
  audio_only = dummy_media.write_audio(tmp_path / "a.wav")
  with pytest.raises(media.MediaError, match="no video stream"):
    media_video.frames_at(audio_only, [0.0])


def test_truncated_mp4_is_an_error_not_a_crash(tmp_path):
  full = dummy_media.write_video(tmp_path / "full.mp4", seconds=2.0)
  cut = dummy_media.truncate(full, str(tmp_path / "cut.mp4"), 0.6)
  with pytest.raises(media.MediaError):
    media_video.decode_video(cut)


def test_probe(tmp_path):
  info = media.probe(dummy_media.write_video(
      tmp_path / "v.mp4", seconds=2.0, fps=25, width=64, height=48,
      sample_rate=22050, channels=2))
  assert info.has_audio and info.has_video
  assert (info.width, info.height) == (64, 48)
  assert info.sample_rate_hz == 22050 and info.num_channels == 2
  assert info.duration_seconds == pytest.approx(2.0, abs=0.05)
  assert info.video_codec == "h264" and info.audio_codec == "aac"
