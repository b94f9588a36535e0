"""Embedding and scoring files: generated media, the CLIs, and real clips."""

import json
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from data_prep.synthetic_av import generate
from l3_tf.data import media
from l3_tf.data import media_audio
from l3_tf.data import media_video
from l3_tf.serving import embed
from l3_tf.serving import embed_files
from l3_tf.serving import embed_inputs
from l3_tf.serving import embedding_storage
from l3_tf.serving import file_jobs
from l3_tf.serving import score
from tests import testing

RATE = 48000
FPS = 10
VIDEO_SECONDS = 3.2  # not a multiple of the hops used: no boundary cases
SHORT_SIDE = 256


@pytest.fixture(scope="module")
def embedder(tiny_export):
  return embed.Embedder.load(tiny_export.saved_model)


def _sound(rate: int, seed: int, seconds: float = 2.0) -> np.ndarray:
  """A deterministic mixture of modulated tones and a chirp, all below
  6 kHz, evaluated at `rate`: the same sound at every rate >= 16 kHz."""
  rng = np.random.default_rng(seed)
  t = np.arange(int(round(seconds * rate))) / rate
  freqs, amps = rng.uniform(150, 6000, 6), rng.uniform(0.05, 0.2, 6)
  phases, mods = rng.uniform(0, 2 * np.pi, 6), rng.uniform(0.5, 4, 6)
  x = sum(a * np.sin(2 * np.pi * f * t + p) * (0.6 + 0.4 * np.sin(2 * np.pi * m * t))
          for f, a, p, m in zip(freqs, amps, phases, mods))
  f0 = rng.uniform(200, 1000)
  return (x + 0.1 * np.sin(2 * np.pi * (f0 * t + 800 * t ** 2))).astype(np.float32)


def _frames(count: int) -> np.ndarray:
  """uint8 [count, 64, 96, 3]: frame i has red = 8 i and a square at a
  position that moves with i, so every frame is different."""
  frames = np.zeros((count, 64, 96, 3), np.uint8)
  for i in range(count):
    frames[i, :, :, 0] = 8 * i
    frames[i, 8:40, 2 * i:2 * i + 32, 1] = 255
  return frames


@pytest.fixture(scope="module")
def video(tmp_path_factory):
  """A 3.2 s, 10 fps H.264 + AAC mp4."""
  path = str(tmp_path_factory.mktemp("video") / "clip.mp4")
  count = int(VIDEO_SECONDS * FPS)
  generate.write_mp4(path, _frames(count),
                     _sound(RATE, seed=7, seconds=VIDEO_SECONDS), FPS, crf=18)
  return path


def _implied_count(duration: float, hop: float, center: bool) -> int:
  """The window count of `l3_tf.serving.embed`'s docstring, in seconds."""
  return 1 + max(0, math.ceil((duration + (0.5 if center else 0) - 1) / hop
                              - 1e-9))


@pytest.mark.parametrize("center", [True, False])
def test_video_audio_and_image_embeddings_are_aligned(embedder, video, center,
                                                      tiny_bound):
  hop = 0.5
  result = embedder.embed_video(video, hop_seconds=hop, center=center,
                                batch_size=4)
  duration = media.probe(video).duration_seconds
  assert abs(duration - VIDEO_SECONDS) < 0.05
  count = _implied_count(VIDEO_SECONDS, hop, center)
  assert count == (7 if center else 6)  # the last window reaches 3.2 s
  assert result.audio.shape == (count, 192)
  assert result.image.shape == (count, 256)
  first = 0.0 if center else 0.5
  np.testing.assert_allclose(result.timestamps, first + hop * np.arange(count))
  recording = media_audio.load_audio(video)
  for k, t in enumerate(result.timestamps):
    # The image embedding at t is that of the frame displayed at t ...
    frame = media_video.frames_at(video, [t], short_side=SHORT_SIDE)
    shown = int(np.floor(t * FPS + 1e-9))
    assert abs(int(frame[0, 0, 0, 0]) - 8 * shown) <= 3  # red = 8 * index
    testing.assert_close_normwise(
        result.image[k], embedder.embed_images(frame)[0], tiny_bound,
        what=f"image embedding at {t} s")
    # ... and the audio embedding at t that of the second centred on t.
    window = embed_inputs.extract_windows(
        recording, embed_inputs.starts_for_centres([t]), RATE)
    testing.assert_close_normwise(
        result.audio[k], embedder.embed_windows(window)[0], tiny_bound,
        what=f"audio embedding at {t} s")


def test_resampled_sounds_embed_close_to_the_48khz_sound(embedder, tmp_path):
  """"Close" is measured against what different sounds give: for every
  window, the distance between the embedding of a sound decoded from 16,
  22.05 or 44.1 kHz and that of the same sound generated at 48 kHz must be
  under 0.35 of the distance from the latter to the nearest window of any of
  four other sounds (measured: at most 0.21, mean 0.06). Raw cosine alone
  would not say much here: different sounds already reach cosine 0.97 in
  this tiny, barely trained network."""
  hop, seeds = 0.25, range(5)
  reference = {s: embedder.embed_audio_file(
      testing.write_audio(tmp_path / f"s{s}_48000.wav", _sound(RATE, s), RATE),
      hop_seconds=hop) for s in seeds}
  for rate in (16000, 22050, 44100):
    for s in seeds:
      path = testing.write_audio(tmp_path / f"s{s}_{rate}.wav",
                                 _sound(rate, s), rate)
      got = embedder.embed_audio_file(path, hop_seconds=hop)
      np.testing.assert_array_equal(got.timestamps, reference[s].timestamps)
      assert got.timestamps.size == _implied_count(2.0, hop, True) == 7
      mine = reference[s].embedding
      others = np.concatenate([reference[o].embedding for o in seeds if o != s])
      for k in range(mine.shape[0]):
        same = np.linalg.norm(got.embedding[k] - mine[k])
        nearest_other = np.linalg.norm(others - mine[k], axis=1).min()
        assert same < 0.35 * nearest_other, (rate, s, k, same, nearest_other)
        cosine = got.embedding[k] @ mine[k] / (
            np.linalg.norm(got.embedding[k]) * np.linalg.norm(mine[k]))
        assert cosine > 0.99, (rate, s, k, cosine)


def test_embed_files_writes_skips_and_counts_failures(embedder, video,
                                                      tmp_path):
  inputs = tmp_path / "in"
  (inputs / "sub").mkdir(parents=True)
  testing.write_audio(inputs / "a.wav", _sound(22050, 1, 1.5), 22050)
  testing.write_audio(inputs / "sub" / "b.ogg", _sound(RATE, 2, 2.3), RATE)
  (inputs / "notes.txt").write_text("not media: ignored in folders")
  (inputs / "broken.mp3").write_bytes(b"\x00garbage" * 100)
  os.symlink(video, inputs / "clip.mp4")  # audio mode reads its sound track
  out = tmp_path / "out"
  failures = []
  summary = embed_files.embed_files(
      embedder, "audio", [str(inputs)], str(out), progress=False,
      report=failures.append, hop_seconds=0.5)
  assert sorted(os.path.relpath(p, out) for p in summary.written) == [
      "a.npz", "clip.npz", os.path.join("sub", "b.npz")]
  assert [os.path.basename(p) for p, _ in summary.failed] == ["broken.mp3"]
  assert len(failures) == 1 and "broken.mp3" in failures[0]
  a = np.load(out / "a.npz")
  assert sorted(a.files) == ["embedding", "timestamps"]
  assert a["embedding"].shape == (_implied_count(1.5, 0.5, True), 192)
  np.testing.assert_allclose(a["timestamps"], [0.0, 0.5, 1.0])
  # A second run skips what exists and writes nothing.
  again = embed_files.embed_files(embedder, "audio", [str(inputs)], str(out),
                                  progress=False, report=failures.append)
  assert len(again.skipped) == 3 and not again.written
  # --overwrite re-embeds (here with another hop).
  over = embed_files.embed_files(embedder, "audio", [str(inputs / "a.wav")],
                                 str(out), overwrite=True, progress=False,
                                 hop_seconds=0.25, embedding=512)
  assert len(over.written) == 1
  assert np.load(out / "a.npz")["embedding"].shape == (5, 16)  # 0..1 s


@pytest.mark.parametrize("scheme", ["ram", "file"])
def test_output_dir_url_is_written_through_tensorflow_file_systems(
    embedder, video, tmp_path, scheme):
  """An `--output_dir` URL (TensorFlow's built-in `ram://` and `file://`;
  `s3://` in tests/object_storage_test.py) is written through `tf.io.gfile`:
  not into a local folder named "ram:" or "file:" (pathlib folds "ram://x"
  into "ram:/x"), with the skip-existing check and the failure list on the
  same file system."""
  inputs = tmp_path / "in"
  inputs.mkdir()
  testing.write_audio(inputs / "a.wav", _sound(RATE, 1, 1.5), RATE)
  (inputs / "broken.mp3").write_bytes(b"\x00garbage" * 100)
  out = (f"ram://embed_{os.getpid()}/out/" if scheme == "ram"
         else f"file://{tmp_path}/out/")
  summary = embed_files.embed_files(
      embedder, "audio", [str(inputs)], out, progress=False,
      report=lambda line: None, hop_seconds=0.5, output_format="parquet")
  assert summary.written == [out + "a.parquet"]
  assert summary.failed_tsv == out + embed_files.FAILED_TSV.format(
      kind="audio")
  with tf.io.gfile.GFile(summary.failed_tsv) as f:
    assert "broken.mp3" in f.read()
  local = tmp_path / "a.parquet"
  tf.io.gfile.copy(summary.written[0], str(local))
  rows = embedding_storage.read_parquet(str(local))
  assert rows["embedding"].shape == (_implied_count(1.5, 0.5, True), 192)
  assert not any(p.startswith(f"{scheme}:") for p in os.listdir("."))
  assert not tf.io.gfile.glob(out + "*.partial")
  # Rerun: the object exists on that file system, so it is skipped.
  again = embed_files.embed_files(embedder, "audio", [str(inputs / "a.wav")],
                                  out, progress=False, output_format="parquet")
  assert again.skipped == [str(inputs / "a.wav")] and not again.written
  # Nothing failed this time: the old failure list is removed.
  assert not tf.io.gfile.exists(summary.failed_tsv)


def test_embed_files_video_and_image_outputs(embedder, video, tmp_path,
                                             tiny_bound):
  out = tmp_path / "out"
  summary = embed_files.embed_files(embedder, "video", [video], str(out),
                                    progress=False, hop_seconds=0.5,
                                    center=False)
  assert not summary.failed
  clip = np.load(out / "clip.npz")
  assert sorted(clip.files) == ["audio_embedding", "image_embedding",
                                "timestamps"]
  assert clip["audio_embedding"].shape == (6, 192)
  assert clip["image_embedding"].shape == (6, 256)
  np.testing.assert_allclose(clip["timestamps"],
                             [0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
  frame = media_video.frames_at(video, [1.0])[0]
  png = tmp_path / "frame.png"
  from PIL import Image
  Image.fromarray(frame).save(png)
  summary = embed_files.embed_files(embedder, "image", [str(png)], str(out),
                                    progress=False)
  image = np.load(out / "frame.npz")
  assert image["embedding"].shape == (1, 256)
  np.testing.assert_array_equal(image["timestamps"], [0.0])
  testing.assert_close_normwise(image["embedding"][0],
                                embedder.embed_images(frame)[0], tiny_bound,
                                what="image file's embedding")
  with pytest.raises(ValueError, match=r"embedding=8192; expected one of "
                     r"\[512, 6144, 'transfer', 'shared'\]"):
    embed_files.embed_files(embedder, "audio", [video], str(out),
                            embedding=8192)


def test_same_output_name_is_reported_not_overwritten(tmp_path):
  (tmp_path / "x.wav").write_bytes(b"")
  (tmp_path / "x.mp3").write_bytes(b"")
  jobs, problems = file_jobs.find_jobs([str(tmp_path)], "audio", "out")
  assert [os.path.basename(j.input_path) for j in jobs] == ["x.mp3"]
  [(path, reason)] = problems
  assert os.path.basename(path) == "x.wav" and "also the output of" in reason


def test_score_pair_from_files_and_from_video(embedder, video, tmp_path,
                                              tiny_export, tiny_bound):
  pair = score.load_pair(video=video, at_seconds=1.5,
                         params=embedder.audio_params)
  assert pair.image.shape == (64, 96, 3) and pair.waveform.shape == (RATE,)
  assert abs(int(pair.image[0, 0, 0]) - 8 * 15) <= 3  # frame 15 at t=1.5 s
  probability = score.score_pair(embedder, pair)
  recording = media_audio.load_audio(video)
  image = media_video.frames_at(video, [1.5])[0]
  window = recording[int(1.0 * RATE):int(2.0 * RATE)]
  expected = embedder.score(image, window)
  assert 0 <= probability <= 1
  testing.assert_probability_close(
      probability, expected, tiny_bound,
      testing.pair_logits(embedder, tiny_export.avc, image, window))
  with pytest.raises(ValueError, match="at_seconds is required"):
    score.load_pair(video=video)
  with pytest.raises(ValueError, match="after the end"):
    score.load_pair(video=video, at_seconds=9.0)


def _console_script(module: str, name: str, args: list[str]):
  """Runs `experiments.<module>:run` the way the installed console script
  `name` does, in a fresh process."""
  code = (f"import sys; sys.argv[0] = {name!r}; "
          f"from experiments.{module} import run; sys.exit(run())")
  env = dict(os.environ, PYTHONPATH=str(testing.REPO_ROOT))
  return subprocess.run([sys.executable, "-c", code, *args], env=env,
                        capture_output=True, text=True, timeout=300)


def test_console_scripts_are_declared():
  setup = (testing.REPO_ROOT / "setup.py").read_text()
  assert '"l3-embed = experiments.embed:run"' in setup
  assert '"l3-score = experiments.score:run"' in setup


def test_l3_embed_cli_folder_with_a_broken_file(tiny_export, video, tmp_path):
  inputs = tmp_path / "in"
  inputs.mkdir()
  os.symlink(video, inputs / "good.mp4")
  (inputs / "broken.mp4").write_bytes(b"not a video at all" * 50)
  out = tmp_path / "out"
  result = _console_script("embed", "l3-embed", [
      "video", str(inputs), f"--model={tiny_export.saved_model}",
      f"--output_dir={out}", "--hop_seconds=1", "--embedding=512"])
  assert result.returncode == 1, result.stderr
  summary = result.stderr.strip().splitlines()[-1]
  assert summary.startswith("l3-embed video: 1 files done, 0 skipped")
  assert "1 failed" in summary and "4 windows" in summary
  assert "broken.mp4" in result.stderr
  tsv = (out / "l3-embed_failed_video.tsv").read_text().splitlines()
  assert tsv[0] == "input\treason" and len(tsv) == 2
  assert tsv[1].startswith(f"{inputs / 'broken.mp4'}\t")
  good = np.load(out / "good.npz")
  assert good["audio_embedding"].shape == (4, 16)  # t = 0, 1, 2, 3 s
  assert good["image_embedding"].shape == (4, 16)
  assert not (out / "broken.npz").exists()


def test_l3_score_cli(tiny_export, video, tiny_bound):
  result = _console_script("score", "l3-score", [
      f"--model={tiny_export.workdir}", f"--video={video}",
      "--at_seconds=1.5"])
  assert result.returncode == 0, result.stderr
  line = json.loads(result.stdout.strip().splitlines()[-1])
  assert 0 <= line["probability"] <= 1 and line["at_seconds"] == 1.5
  pair = score.load_pair(video=video, at_seconds=1.5)
  from_workdir = embed.Embedder.load(tiny_export.workdir)
  expected = from_workdir.score(pair.image, pair.waveform)
  testing.assert_probability_close(
      line["probability"], expected, tiny_bound,
      testing.pair_logits(from_workdir, tiny_export.avc, pair.image,
                          pair.waveform),
      slack=5e-7, what="printed probability (6 decimals: 5e-7 more)")


@pytest.mark.real_data
@pytest.mark.slow
def test_real_clips_embed_with_aligned_timestamps(embedder, tmp_path):
  clips = testing.shared_data("av_clips")
  hop = 1.0
  summary = embed_files.embed_files(embedder, "video", [str(clips)],
                                    str(tmp_path), progress=False,
                                    hop_seconds=hop, embedding=512)
  assert not summary.failed, summary.failed
  assert len(summary.written) == 20
  for output in summary.written:
    relative = pathlib.Path(output).relative_to(tmp_path)
    source = next(clips.glob(str(relative.with_suffix(".*"))))
    seconds = media_audio.load_audio(source).size / RATE
    arrays = np.load(output)
    count = _implied_count(seconds, hop, True)
    assert arrays["timestamps"].shape == (count,), source
    np.testing.assert_allclose(arrays["timestamps"], hop * np.arange(count))
    assert arrays["audio_embedding"].shape == (count, 16)
    assert arrays["image_embedding"].shape == (count, 16)
    assert np.all(np.isfinite(arrays["audio_embedding"]))


def test_export_and_embed_video_for_the_demo(tiny_export, video, tmp_path):
  result = embed_files.export_and_embed_video(
      tiny_export.workdir, video, export_path=str(tmp_path / "export"),
      output_dir=str(tmp_path / "embeddings"), hop_seconds=0.5)
  assert result["export_path"] == str(tmp_path / "export")
  assert (tmp_path / "export" / "saved_model.pb").exists()
  assert result["embeddings_path"] == str(tmp_path / "embeddings" / "clip.npz")
  count = _implied_count(VIDEO_SECONDS, 0.5, True)
  assert result["num_timestamps"] == count
  assert result["audio_embedding_shape"] == [count, 192]
  assert result["image_embedding_shape"] == [count, 256]


def _tone_file(path, seconds=1.3, seed=1) -> str:
  return testing.write_audio(path, _sound(RATE, seed, seconds), RATE)


def test_one_path_is_one_input_never_its_characters(tmp_path):
  wav = _tone_file(tmp_path / "one.wav")
  for given in (wav, pathlib.Path(wav)):  # absolute str and PathLike
    jobs, problems = file_jobs.find_jobs(given, "audio", "out")
    assert [j.input_path for j in jobs] == [wav] and not problems
    assert jobs[0].outputs == {"audio": os.path.join("out", "one.npz")}
  # A folder as a bare string is that folder.
  jobs, _ = file_jobs.find_jobs(str(tmp_path), "audio", None)
  assert [j.input_path for j in jobs] == [wav]


def test_a_folder_and_a_file_inside_it_embed_the_file_once(tmp_path):
  (tmp_path / "in" / "sub").mkdir(parents=True)
  a = _tone_file(tmp_path / "in" / "sub" / "a.wav")
  b = _tone_file(tmp_path / "in" / "b.flac")
  jobs, problems = file_jobs.find_jobs(
      [a, str(tmp_path / "in"), str(tmp_path / "in" / "*.flac")], "audio",
      "out")
  assert [j.input_path for j in jobs] == [a, b] and not problems


@pytest.mark.parametrize("make, match", [
    (lambda root: str(root / "missing.wav"), "missing.wav: no such file"),
    (lambda root: (root / "empty").mkdir() or str(root / "empty"),
     "empty: no audio files in this folder"),
    (lambda root: ((root / "notes").mkdir(), (root / "notes" / "a.txt")
                   .write_text("x"))[0] or str(root / "notes"),
     "notes: no audio files in this folder"),
    (lambda root: str(root / "*.nothing"), r"\*.nothing: the pattern matches "
     "no audio file"),
    (lambda root: [], r"inputs=\[\]"),
])
def test_inputs_that_name_nothing_are_errors(tmp_path, make, match):
  with pytest.raises(ValueError, match=match):
    file_jobs.find_jobs(make(tmp_path), "audio", "out")


@pytest.mark.parametrize("kwargs, match", [
    (dict(kind="sound"), r"kind='sound'; expected one of \['audio', 'image', "
     r"'video'\]"),
    (dict(video_output="both"), r"video_output='both'; expected one of "
     r"\['combined', 'split'\]"),
    (dict(output_format="csv"), r"format='csv'; expected one of "
     r"\['npz', 'parquet'\]"),
    (dict(embedding=8192), r"embedding=8192; expected one of \[512, 6144, "
     r"'transfer', 'shared'\]"),
    (dict(suffix="a/b"), "suffix='a/b'"),
    (dict(center="yes"), "center='yes'"),
    (dict(hop_seconds=-1), "hop_seconds=-1"),
    (dict(batch_size=0), "batch_size=0"),
])
def test_run_options_are_checked_at_the_door(embedder, tmp_path, kwargs,
                                             match):
  kwargs = {"kind": "audio", **kwargs}
  with pytest.raises(ValueError, match=match):
    embed_files.embed_files(embedder, kwargs.pop("kind"),
                            _tone_file(tmp_path / "a.wav"),
                            str(tmp_path / "out"), progress=False, **kwargs)
  assert not (tmp_path / "out").exists()


def test_outputs_beside_the_inputs_with_a_suffix(embedder, tmp_path):
  (tmp_path / "sub").mkdir()
  _tone_file(tmp_path / "sub" / "a.wav")
  summary = embed_files.embed_files(embedder, "audio", str(tmp_path),
                                    suffix="_l3", progress=False,
                                    hop_seconds=0.5)
  assert summary.written == [str(tmp_path / "sub" / "a_l3.npz")]
  # 1.3 s centred at hop 0.5: windows at 0, 0.5, 1 s (the last ends at 1.5).
  assert np.load(summary.written[0])["timestamps"].size == 3


def test_split_video_outputs_and_skip_existing_per_file(embedder, video,
                                                        tmp_path, tiny_bound):
  options = dict(progress=False, hop_seconds=0.5, embedding=512)
  combined = embed_files.embed_files(embedder, "video", video,
                                     str(tmp_path / "c"), **options)
  reference = np.load(combined.written[0])
  out = tmp_path / "s"
  summary = embed_files.embed_files(embedder, "video", video, str(out),
                                    video_output="split", suffix="_l3",
                                    **options)
  audio_path, image_path = out / "clip_l3_audio.npz", out / "clip_l3_image.npz"
  assert summary.written == [str(audio_path), str(image_path)]
  audio, image = np.load(audio_path), np.load(image_path)
  assert sorted(audio.files) == sorted(image.files) == ["embedding",
                                                        "timestamps"]
  np.testing.assert_array_equal(audio["timestamps"], image["timestamps"])
  np.testing.assert_array_equal(audio["timestamps"], reference["timestamps"])
  testing.assert_close_normwise(audio["embedding"],
                                reference["audio_embedding"], tiny_bound,
                                what="split audio embeddings")
  testing.assert_close_normwise(image["embedding"],
                                reference["image_embedding"], tiny_bound,
                                what="split image embeddings")
  # One modality removed: only it is recomputed, equal to before.
  for path, key in ((image_path, "image_embedding"),
                    (audio_path, "audio_embedding")):
    os.remove(path)
    again = embed_files.embed_files(embedder, "video", video, str(out),
                                    video_output="split", suffix="_l3",
                                    **options)
    assert again.written == [str(path)] and len(again.done) == 1
    testing.assert_close_normwise(np.load(path)["embedding"], reference[key],
                                  tiny_bound, what=f"recomputed {key}")
  rerun = embed_files.embed_files(embedder, "video", video, str(out),
                                  video_output="split", suffix="_l3",
                                  **options)
  assert rerun.skipped == [video] and not rerun.written
  assert str(rerun).startswith("l3-embed video: 0 files done, 1 skipped "
                               "(output exists), 0 failed, 0 windows")


def test_parquet_has_one_row_per_window_and_modality(embedder, video,
                                                     tmp_path, tiny_bound):
  import pyarrow.dataset
  out = tmp_path / "pq"
  wav = _tone_file(tmp_path / "tone.wav", seconds=1.7)
  options = dict(progress=False, hop_seconds=0.5, output_format="parquet")
  embed_files.embed_files(embedder, "video", video, str(out), **options)
  embed_files.embed_files(embedder, "video", video, str(out / "split"),
                          video_output="split", **options)
  embed_files.embed_files(embedder, "audio", wav, str(out), **options)
  expected = embedder.embed_video(video, hop_seconds=0.5)
  count = expected.timestamps.size
  combined = embedding_storage.read_parquet(str(out / "clip.parquet"))
  assert list(combined["modality"]) == ["audio"] * count + ["image"] * count
  assert set(combined["file"]) == {video}
  np.testing.assert_array_equal(combined["timestamp"],
                                np.tile(expected.timestamps, 2))
  for modality, want in (("audio", expected.audio),
                         ("image", expected.image)):
    rows = [v for v, m in zip(combined["embedding"], combined["modality"])
            if m == modality]
    testing.assert_close_normwise(np.stack(rows), want, tiny_bound,
                                  what=f"parquet {modality} rows")
    split = embedding_storage.read_parquet(str(out / "split" /
                                         f"clip_{modality}.parquet"))
    testing.assert_close_normwise(split["embedding"], want, tiny_bound,
                                  what=f"split parquet {modality} rows")
  tone = embedding_storage.read_parquet(str(out / "tone.parquet"))
  testing.assert_close_normwise(
      tone["embedding"], embedder.embed_audio_file(wav,
                                                   hop_seconds=0.5).embedding,
      tiny_bound, what="parquet tone rows")
  # All files share one schema: one query over the folder, no full load.
  table = pyarrow.dataset.dataset(str(out), format="parquet").to_table(
      columns=["file", "timestamp"],
      filter=pyarrow.dataset.field("modality") == "audio")
  assert table.num_rows == 2 * count + tone["timestamp"].size


def test_failures_tsv_lists_the_failed_and_goes_when_none_fail(embedder,
                                                               tmp_path):
  inputs = tmp_path / "in"
  inputs.mkdir()
  _tone_file(inputs / "good.wav")
  (inputs / "bad.wav").write_bytes(b"RIFF not really")
  out = tmp_path / "out"
  summary = embed_files.embed_files(embedder, "audio", str(inputs), str(out),
                                    progress=False, report=lambda line: None,
                                    hop_seconds=0.5)
  assert summary.done == [str(inputs / "good.wav")]
  assert [p for p, _ in summary.failed] == [str(inputs / "bad.wav")]
  assert summary.windows == 3 and summary.seconds > 0
  tsv = out / "l3-embed_failed_audio.tsv"
  assert summary.failed_tsv == str(tsv) and str(tsv) in str(summary)
  assert tsv.read_text().splitlines()[1].startswith(f"{inputs / 'bad.wav'}\t")
  os.remove(inputs / "bad.wav")
  embed_files.embed_files(embedder, "audio", str(inputs), str(out),
                          progress=False)
  assert not tsv.exists()


_BAD_USAGE = [
    ["sound", "x.wav"],
    ["audio"],
    ["audio", "{missing}"],
    ["audio", "{empty}"],
    ["audio", "{wav}", "--format=xml"],
    ["video", "{wav}", "--video_output=both"],
    ["audio", "{wav}", "--embedding=8192"],
    ["audio", "{wav}", "--hop_seconds=abc"],
    ["audio", "{wav}", "--hop_seconds=0"],
    ["audio", "{wav}", "--batch_size=0"],
    ["audio", "{wav}", "--no_such_flag"],
    ["audio", "{wav}", "--compute_dtype=float16"],
    ["audio", "{wav}", "--model={missing}"],
    ["audio", "{wav}", "--model="],
]


def test_l3_embed_bad_usage_is_exit_2_and_one_line(tiny_export, tmp_path):
  """Every case in one fresh process (each through `run`, as the console
  script), since starting TensorFlow costs seconds."""
  (tmp_path / "empty").mkdir()
  wav = _tone_file(tmp_path / "a.wav")
  names = dict(missing=str(tmp_path / "missing.wav"),
               empty=str(tmp_path / "empty"), wav=wav)
  cases = []
  for case in _BAD_USAGE:
    args = [a.format(**names) for a in case]
    if not any(a.startswith("--model") for a in args):
      args.append(f"--model={tiny_export.saved_model}")
    cases.append(args + [f"--output_dir={tmp_path / 'out'}"])
  code = f"""
import contextlib, io, json, sys
from absl import flags
from experiments import embed
results = []
for args in {cases!r}:
  flags.FLAGS.unparse_flags()
  sys.argv = ["l3-embed", *args]
  err = io.StringIO()
  with contextlib.redirect_stderr(err):
    try:
      embed.run()
      status = 0
    except SystemExit as e:
      status = e.code
  results.append([status, err.getvalue()])
print(json.dumps(results))
"""
  env = dict(os.environ, PYTHONPATH=str(testing.REPO_ROOT))
  result = subprocess.run([sys.executable, "-c", code], env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  outcomes = json.loads(result.stdout.strip().splitlines()[-1])
  for case, (status, stderr) in zip(_BAD_USAGE, outcomes):
    assert status == 2, (case, status, stderr)
    assert "Traceback" not in stderr, (case, stderr)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("l3-embed: error: "), (
        case, stderr)
  assert "missing.wav: no such file" in outcomes[2][1]
  assert "empty: no audio files" in outcomes[3][1]
  assert "format='xml'" in outcomes[4][1]
  assert "--model is required" in outcomes[13][1]
  assert not (tmp_path / "out").exists()


@pytest.mark.real_data
@pytest.mark.filterwarnings("ignore::l3_tf.serving.embed.ShortInputWarning")
def test_real_recordings_as_one_list_equal_one_by_one(embedder, tiny_bound):
  sounds = testing.shared_data("animal_sounds")
  paths = sorted(sounds.glob("*.mp3"))
  rates = [22050 if i % 2 else RATE for i in range(len(paths))]
  recordings = [media_audio.load_audio(p, sample_rate_hz=r)
                for p, r in zip(paths, rates)]
  together = embedder.embed_audio(recordings, rates, hop_seconds=0.25,
                                  batch_size=7)
  assert len(together) == len(paths) == 10
  for got, recording, rate in zip(together, recordings, rates):
    alone = embedder.embed_audio(recording, rate, hop_seconds=0.25)
    testing.assert_close_normwise(got.embedding, alone.embedding, tiny_bound,
                                  what="one recording of the list")
    np.testing.assert_array_equal(got.timestamps, alone.timestamps)
    # The last window reaches the recording's end.
    assert got.timestamps[-1] + 0.5 >= recording.size / rate - 1 / rate
  bento = testing.shared_data("av_clips") / "openl3" / "bento.mp4"
  with pytest.warns(embed.ShortInputWarning, match="bento.mp4 is 0.99"):
    short = embedder.embed_audio_file(bento)
  assert short.embedding.shape[0] == 6  # 0.998 s centred, hop 0.1: 0..0.5 s


def test_constant_image_and_frames_warn_naming_the_file(embedder, tmp_path):
  from PIL import Image
  png = tmp_path / "grey.png"
  Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(png)
  with pytest.warns(embed.ConstantImageWarning, match="grey.png is a single"):
    result = embedder.embed_image_file(png)
  assert result.embedding.shape == (1, 256)
  path = str(tmp_path / "dark.mp4")
  frames = _frames(12)
  frames[:4] = 0  # 0.4 s of black
  generate.write_mp4(path, frames, _sound(RATE, 3, 1.2), FPS, crf=18)
  with pytest.warns(embed.ConstantImageWarning,
                    match=r"dark.mp4 has 4 of 8 frames that are a single"):
    video = embedder.embed_video(path, hop_seconds=0.1)
  assert video.image.shape[0] == 8  # 1.2 s centred: t = 0 .. 0.7 s
