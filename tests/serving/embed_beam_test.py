"""`l3-embed --runner` and `l3-search index --runner / --from_embeddings`:
the Beam pipeline (DirectRunner, 2 worker processes) against the in-process
path, on real clips and broken files; a SIGKILL and a rerun; S3 both ways.

Equal outputs: the pipeline calls the step the in-process path calls
(`embed_files.embed_jobs`), with the windows of several files in one network
call instead of one file's. A window's embedding does not depend on its
batch neighbours, but the convolutions' summation order may change with the
batch shape (and does, on other CPUs and kernels), so vectors are equal
within the round-off bound of the tiny network's forward pass, normwise per
window (`compiled_check.forward_bound`, the `tiny_bound` fixture; a window
from another file or time differs by O(its norm)). Index distances add the
rounding of 128-term float32 squared distances (`_distance_tolerance`).
(Before: 1e-5 absolute, which one CPU had met with exactly 0.)
"""

import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from l3_tf.serving import embed
from l3_tf.serving import embed_files
from l3_tf.serving import embedding_storage
from l3_tf.serving import file_jobs
from l3_tf.serving import index_store
from l3_tf.serving import search_index
from tests import s3_server
from tests import testing

beam = pytest.importorskip("apache_beam")
from l3_tf.serving import embed_beam  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

ROOT = str(testing.REPO_ROOT)
TWO_WORKERS = "--direct_num_workers=2 --direct_running_mode=multi_processing"
RATE = 16000


@pytest.fixture(scope="module")
def embedder(tiny_export):
  return embed.Embedder.load(tiny_export.saved_model)


def _tone(path, seed: int, seconds: float = 2.0) -> str:
  rng = np.random.default_rng(seed)
  t = np.arange(int(seconds * RATE)) / RATE
  sound = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 3000) * t)
  return testing.write_audio(path, sound.astype(np.float32), RATE)


def _broken_files(folder: pathlib.Path, extension: str) -> list[str]:
  """Inputs that must fail, each with its own reason: empty, not media,
  a truncated real container."""
  folder.mkdir(parents=True, exist_ok=True)
  (folder / f"empty{extension}").write_bytes(b"")
  (folder / f"garbage{extension}").write_bytes(
      np.random.default_rng(0).integers(0, 256, 4000, np.uint8).tobytes())
  whole = folder / f"whole{extension}"
  if extension == ".mp4":
    testing.write_moving_video(whole, 9, 2.4)
  else:
    _tone(whole, 9)
  (folder / f"truncated{extension}").write_bytes(whole.read_bytes()[:300])
  whole.unlink()
  (folder / "notes.txt").write_text("a side file: never tried")
  return sorted(str(p) for p in folder.iterdir() if p.suffix == extension)


def _files(root: pathlib.Path) -> dict[str, pathlib.Path]:
  """Visible files under `root` by relative path (the run folder of a
  killed pipeline is hidden, as l3-embed's docstring says)."""
  return {str(p.relative_to(root)): p for p in sorted(root.rglob("*"))
          if p.is_file() and not any(part.startswith(".") for part in
                                     p.relative_to(root).parts)}


def _assert_same_outputs(expected: pathlib.Path, got: pathlib.Path,
                         bound: float) -> None:
  """File for file, key for key; timestamps and names exact, vectors within
  `bound` (normwise, relative) row by row."""
  want, have = _files(expected), _files(got)
  assert sorted(have) == sorted(want)
  for name, path in want.items():
    if name.endswith(".npz"):
      a, b = np.load(path), np.load(have[name])
      assert sorted(a.files) == sorted(b.files), name
      for key in a.files:
        assert a[key].shape == b[key].shape and a[key].dtype == b[key].dtype
        if key == "timestamps":
          np.testing.assert_array_equal(a[key], b[key])
        else:
          testing.assert_close_normwise(b[key], a[key], bound,
                                        what=f"{name} {key}")
    elif name.endswith(".parquet"):
      a = embedding_storage.read_parquet(str(path))
      b = embedding_storage.read_parquet(str(have[name]))
      for key in ("file", "modality", "timestamp"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=name)
      testing.assert_close_normwise(b["embedding"], a["embedding"], bound,
                                    what=name)
    else:  # the failure list
      assert path.read_text() == have[name].read_text(), name


# -- listing ------------------------------------------------------------------

def test_beam_listing_gives_the_jobs_of_the_in_process_listing(tmp_path,
                                                               monkeypatch):
  clips = tmp_path / "clips"
  (clips / "sub").mkdir(parents=True)
  (clips / ".hidden").mkdir()
  for name in ("a.wav", "sub/b.flac", "sub/a.wav", ".hidden/c.wav",
               "notes.txt", "sub/d.mp4"):
    (clips / name).write_bytes(b"x")
  loose = tmp_path / "loose"
  loose.mkdir()
  (loose / "a.wav").write_bytes(b"x")  # same output name as clips/a.wav
  (loose / "odd.dat").write_bytes(b"x")  # given by name: always taken
  inputs = [str(clips), str(loose / "a.wav"), str(loose / "odd.dat"),
            str(clips / "sub" / "b.flac")]  # b.flac a second time: once
  for kind in ("video", "audio"):
    expected = file_jobs.find_jobs(inputs, kind, str(tmp_path / "out"))
    got = embed_beam.list_jobs(inputs, kind, str(tmp_path / "out"))
    assert got == expected
  jobs, problems = got  # audio: the sound of videos too
  assert [job.input_path for job in jobs] == [
      str(clips / "a.wav"), str(clips / "sub" / "a.wav"),
      str(clips / "sub" / "b.flac"), str(clips / "sub" / "d.mp4"),
      str(loose / "odd.dat")]
  assert [path for path, _ in problems] == [str(loose / "a.wav")]
  monkeypatch.chdir(clips)  # relative paths, as a user types them
  for inputs in (["."], ["sub/"], ["a.wav", "./sub"]):
    assert embed_beam.list_jobs(inputs, "audio", "out") == (
        file_jobs.find_jobs(inputs, "audio", "out"))
  pattern = str(tmp_path / "clips" / "sub" / "*.wav")
  jobs, _ = embed_beam.list_jobs([pattern], "audio", str(tmp_path / "o"))
  assert [job.input_path for job in jobs] == [str(clips / "sub" / "a.wav")]

  (tmp_path / "empty").mkdir()
  for bad, message in ((tmp_path / "missing.wav", "no such file or folder"),
                       (tmp_path / "empty", "no audio files in this folder"),
                       (tmp_path / "*.ogg", "the pattern matches no audio")):
    with pytest.raises(ValueError, match=message):
      embed_beam.list_jobs([str(bad)], "audio", str(tmp_path / "out"))


def test_bad_arguments_fail_before_the_pipeline(tiny_export, tmp_path):
  wav = _tone(tmp_path / "a.wav", 1)
  model = tiny_export.saved_model
  cases = [
      (dict(output_dir=None), "--runner needs --output_dir"),
      (dict(beam_options="--direct_num_wokers=2"),
       "Beam does not know --direct_num_wokers"),
      (dict(beam_options="--x='unclosed"), "No closing quotation"),
      (dict(runner=""), "runner=''; expected a Beam runner"),
      (dict(files_per_batch=0), "files_per_batch=0"),
      (dict(hop_seconds=2.0), "hop_seconds=2.0 is longer"),
      (dict(output_format="csv"), "format='csv'"),
  ]
  for overrides, message in cases:
    kwargs = dict(output_dir=str(tmp_path / "out"), runner="DirectRunner")
    kwargs.update(overrides)
    with pytest.raises(ValueError, match=message):
      embed_beam.embed_files_beam(model, "audio", [wav], **kwargs)
  assert not (tmp_path / "out").exists()


# -- the pipeline against the in-process path ----------------------------------

@pytest.mark.real_data
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::l3_tf.serving.embed.EmbedWarning")
@pytest.mark.parametrize("kind, folder, output_format, video_output", [
    ("audio", "animal_sounds", "parquet", "combined"),
    ("video", "av_clips/SpecVQGAN", "npz", "split"),
])
def test_direct_runner_two_workers_writes_what_the_in_process_path_writes(
    tiny_export, embedder, tmp_path, kind, folder, output_format,
    video_output, tiny_bound):
  real = testing.shared_data(folder.split("/")[0]) / "/".join(
      folder.split("/")[1:])
  broken = _broken_files(tmp_path / "broken",
                         ".mp3" if kind == "audio" else ".mp4")
  inputs = [str(real), str(tmp_path / "broken")]
  options = dict(output_format=output_format, video_output=video_output,
                 hop_seconds=0.5, embedding=512 if kind == "video" else None)
  expected = embed_files.embed_files(embedder, kind, inputs,
                                     str(tmp_path / "in_process"),
                                     progress=False, **options)
  lines = []
  got = embed_beam.embed_files_beam(
      tiny_export.saved_model, kind, inputs, str(tmp_path / "beam"),
      runner="DirectRunner", beam_options=TWO_WORKERS, files_per_batch=3,
      report=lines.append, **options)
  assert got.done == expected.done and len(got.done) >= 9
  assert got.written == [
      p.replace(str(tmp_path / "in_process"), str(tmp_path / "beam"))
      for p in expected.written]
  assert got.windows == expected.windows
  assert not got.skipped
  # Every broken file failed, with the reason the in-process path gives.
  assert [path for path, _ in got.failed] == broken
  assert got.failed == expected.failed
  reasons = dict(got.failed)
  assert "empty file (0 bytes)" in reasons[broken[0]]
  assert all("MediaError" in reason for reason in reasons.values())
  assert len(lines) == len(broken) and all("FAILED" in l for l in lines)
  assert got.failed_tsv == str(tmp_path / "beam" /
                               f"l3-embed_failed_{kind}.tsv")
  _assert_same_outputs(tmp_path / "in_process", tmp_path / "beam", tiny_bound)
  assert str(got).startswith(f"l3-embed {kind}: {len(got.done)} files done, "
                             f"0 skipped (output exists), {len(broken)} "
                             "failed")
  # The run folder is gone: only outputs and the failure list remain.
  assert not [p for p in (tmp_path / "beam").iterdir()
              if p.name.startswith(".")]


def _l3_embed(args, **kwargs):
  return subprocess.Popen(
      [sys.executable, "-m", "experiments.embed", *args], cwd=ROOT,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), **kwargs)


@pytest.mark.slow
def test_rerun_after_sigkill_finishes_every_output_once(tiny_export, embedder,
                                                        tmp_path, tiny_bound):
  """SIGKILL to the launcher and its worker processes once some outputs are
  written; every output then on disk is whole; a rerun embeds the rest,
  skips those, and leaves every output once, equal to the in-process one."""
  sounds = tmp_path / "sounds"
  sounds.mkdir()
  count = 36
  for i in range(count):
    _tone(sounds / f"tone{i:02d}.wav", i, seconds=3.0)
  out = tmp_path / "out"
  args = ["audio", str(sounds), f"--model={tiny_export.saved_model}",
          f"--output_dir={out}", "--hop_seconds=0.25",
          "--runner=DirectRunner", f"--beam_options={TWO_WORKERS}",
          "--files_per_batch=2"]
  first = _l3_embed(args, start_new_session=True)  # its own process group
  try:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and first.poll() is None:
      if len(list(out.glob("*.npz"))) >= 2:
        break
      time.sleep(0.1)
  finally:
    os.killpg(first.pid, signal.SIGKILL)  # the launcher and its workers
    _, stderr = first.communicate(timeout=60)
  before = sorted(out.glob("*.npz"))
  assert 2 <= len(before) < count, (len(before), stderr[-3000:])
  for path in before:  # whole files only: each loads, with its arrays
    arrays = np.load(path)
    # 3 s centred, hop 0.25: 1 + ceil((3 + 0.5 - 1) / 0.25) = 11 windows.
    assert arrays["embedding"].shape[0] == arrays["timestamps"].size == 11

  second = _l3_embed(args)
  _, stderr = second.communicate(timeout=600)
  assert second.returncode == 0, stderr[-3000:]
  summary = [line for line in stderr.splitlines()
             if line.startswith("l3-embed audio: ")][-1]
  done = count - len(before)
  assert summary.startswith(f"l3-embed audio: {done} files done, "
                            f"{len(before)} skipped (output exists), 0 failed")
  expected = embed_files.embed_files(embedder, "audio", [str(sounds)],
                                     str(tmp_path / "in_process"),
                                     progress=False, hop_seconds=0.25)
  assert len(expected.done) == count
  _assert_same_outputs(tmp_path / "in_process", out, tiny_bound)
  assert not list(out.rglob("*.partial"))


# -- object storage -----------------------------------------------------------

@pytest.mark.slow
def test_s3_inputs_and_outputs_through_beams_file_systems(tiny_export,
                                                          embedder, tmp_path,
                                                          tiny_bound):
  """Inputs read from and outputs written to a local S3 server (moto), by
  Beam's S3 file system; equal to the in-process outputs of local copies."""
  local = tmp_path / "local"
  local.mkdir()
  paths = [_tone(local / f"t{i}.wav", i) for i in range(3)]
  (local / "sub").mkdir()
  paths.append(_tone(local / "sub" / "t0.wav", 7))
  (local / "broken.wav").write_bytes(b"RIFF but nothing else")
  expected = embed_files.embed_files(embedder, "audio", [str(local)],
                                     str(tmp_path / "in_process"),
                                     progress=False, hop_seconds=0.5,
                                     output_format="parquet")
  with s3_server.running_server() as server:
    client = server.client()
    for path in sorted(local.rglob("*")):
      if path.is_file():
        client.upload_file(str(path), s3_server.BUCKET,
                           f"in/{path.relative_to(local)}")
    source = f"s3://{s3_server.BUCKET}/in"
    output = f"s3://{s3_server.BUCKET}/out"
    got = embed_beam.embed_files_beam(
        tiny_export.saved_model, "audio", [source], output,
        runner="DirectRunner",
        beam_options=f"{TWO_WORKERS} {server.beam_options()}",
        hop_seconds=0.5, output_format="parquet", report=lambda line: None)
    assert got.done == [p.replace(str(local), source)
                        for p in expected.done]
    assert [p for p, _ in got.failed] == [f"{source}/broken.wav"]
    # The reason names the input by its URL, not the worker's local copy.
    assert got.failed[0][1] == expected.failed[0][1].replace(str(local),
                                                             source)
    keys = server.keys("out/")
    assert sorted(keys) == ["out/l3-embed_failed_audio.tsv",
                            "out/sub/t0.parquet", "out/t0.parquet",
                            "out/t1.parquet", "out/t2.parquet"]
    downloaded = tmp_path / "downloaded"
    for key in keys:
      target = downloaded / key[len("out/"):]
      target.parent.mkdir(parents=True, exist_ok=True)
      client.download_file(s3_server.BUCKET, key, str(target))
    # A rerun skips every output on S3.
    again = embed_beam.embed_files_beam(
        tiny_export.saved_model, "audio", [source], output,
        runner="DirectRunner", beam_options=server.beam_options(),
        hop_seconds=0.5, output_format="parquet", report=lambda line: None)
    assert len(again.skipped) == 4 and not again.done
    assert sorted(server.keys("out/")) == sorted(keys)
  for name in list(_files(downloaded)):
    if name.endswith(".parquet"):  # the `file` column: the URL
      table = embedding_storage.read_parquet(str(downloaded / name))
      assert set(table["file"]) == {f"{source}/{name[:-8]}.wav"}
  tsv = (downloaded / "l3-embed_failed_audio.tsv").read_text()
  assert tsv == (tmp_path / "in_process" / "l3-embed_failed_audio.tsv"
                 ).read_text().replace(str(local), source)
  for name, path in _files(tmp_path / "in_process").items():
    if name.endswith(".parquet"):
      a = embedding_storage.read_parquet(str(path))
      b = embedding_storage.read_parquet(str(downloaded / name))
      np.testing.assert_array_equal(a["timestamp"], b["timestamp"])
      testing.assert_close_normwise(b["embedding"], a["embedding"],
                                    tiny_bound, what=name)


# -- l3-search ----------------------------------------------------------------

def _hits(searcher, queries):
  """Exact (brute-force) hits: an HNSW graph depends on the order items were
  added in, which a 2-worker Beam run does not fix."""
  return [[(h.file, h.modality, round(h.time, 6), h.distance)
           for h in searcher.search(vector, k=12, exact=True)]
          for vector in queries]


def _contents(index_path) -> dict:
  """(file, modality, time) -> stored vector, for every item of an index."""
  index_dir = index_store.IndexDir(str(index_path))
  vectors = index_dir.vectors(index_dir.info()["dim"])
  return {(i.file, i.modality, round(i.time, 6)): np.array(v)
          for i, v in zip(index_dir.items(), vectors)}


def _distance_tolerance(distance, bound: float):
  """How far a hit's distance may move between two indexes of the same
  items whose unit vectors are within `bound` (normwise) of each other.

  The vectors move it by at most `bound`; each index's squared distance, a
  float32 sum of 128 terms of at most 4, is within 128 x eps32 x 4 of the
  exact one, so two are within twice that, delta; |sqrt(s1) - sqrt(s2)| =
  |s1 - s2| / (sqrt(s1) + sqrt(s2)) <= min(sqrt(delta), delta / distance).
  """
  delta = 2 * 128 * np.finfo(np.float32).eps * 4
  distance = np.asarray(distance, np.float64)
  return bound + np.minimum(np.sqrt(delta),
                            delta / np.maximum(distance, np.sqrt(delta)))


def _assert_same_hits(got_hits, want_hits, name, bound: float) -> None:
  """The same distances rank by rank (to `_distance_tolerance`), and the
  same items except among ties: items whose distances lie within twice that
  of each other may trade places, and of a tie at the k-th rank either may
  be in."""
  want = np.array([h[3] for h in want_hits])
  got = np.array([h[3] for h in got_hits])
  assert np.all(np.abs(got - want) <= _distance_tolerance(want, bound)), (
      name, got, want)
  last = want_hits[-1][3]
  for hits, others in ((got_hits, want_hits), (want_hits, got_hits)):
    others_by_item = {h[:3]: h[3] for h in others}
    for item in (h[:3] for h in hits):
      if item not in others_by_item:  # only a tie at the cut may be missing
        distance = dict((h[:3], h[3]) for h in hits)[item]
        assert distance >= last - 2 * _distance_tolerance(last, bound), (
            name, item, distance, last)


@pytest.mark.real_data
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::l3_tf.serving.embed.EmbedWarning")
def test_search_index_runner_and_from_embeddings_find_what_index_finds(
    tiny_avenet_export, tmp_path, tiny_avenet_bound):
  """Three indexes of the same clips (real ones, generated ones, a broken
  one): `l3-search index` in process, `--runner=DirectRunner` (2 workers),
  and `--from_embeddings` of `l3-embed --embedding=shared
  --format=parquet` outputs; the same hits for the same queries."""
  model = tiny_avenet_export.saved_model
  embedder = embed.Embedder.load(model)
  videos = tmp_path / "videos"
  (videos / "real").mkdir(parents=True)
  clips = sorted((testing.shared_data("av_clips") / "SpecVQGAN").glob("*.mp4"))
  for clip in clips[:3]:  # linked, not copied
    (videos / "real" / clip.name).symlink_to(clip)
  made = [testing.write_moving_video(videos / "a.mp4", 1),
          testing.write_moving_video(videos / "b.mp4", 2)]
  (videos / "broken.mp4").write_bytes(b"not a video" * 100)
  hop = 0.5

  in_process = search_index.index_videos(embedder, str(videos),
                                         str(tmp_path / "in_process"), model,
                                         hop_seconds=hop, progress=False,
                                         report=lambda line: None)
  assert len(in_process.indexed) == 5 and len(in_process.failed) == 1
  runner = subprocess.run(
      [sys.executable, "-m", "experiments.search", "index", str(videos),
       f"--model={model}", f"--index={tmp_path / 'runner'}",
       f"--hop_seconds={hop}", "--runner=DirectRunner",
       f"--beam_options={TWO_WORKERS}", "--files_per_batch=2"],
      cwd=ROOT, capture_output=True, text=True, timeout=900)
  assert runner.returncode == 1, runner.stderr[-3000:]  # the broken video
  assert "5 indexed, 0 skipped (already indexed), 1 failed" in runner.stderr
  assert "broken.mp4" in runner.stderr

  embedded = embed_files.embed_files(
      embedder, "video", [str(videos)], str(tmp_path / "shared"),
      progress=False, hop_seconds=hop, embedding=embed.SHARED,
      output_format="parquet")
  assert len(embedded.done) == 5
  from_embeddings = subprocess.run(
      [sys.executable, "-m", "experiments.search", "index",
       f"--from_embeddings={tmp_path / 'shared'}", f"--model={model}",
       f"--index={tmp_path / 'from_embeddings'}", f"--hop_seconds={hop}"],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert from_embeddings.returncode == 1, from_embeddings.stderr[-3000:]

  queries = [search_index.query_vector(embedder, video=made[1],
                                       at_seconds=1.0)[0],
             search_index.query_vector(embedder, audio=made[0],
                                       at_seconds=1.5)[0],
             search_index.query_vector(embedder, video=str(clips[0]),
                                       at_seconds=2.0)[0],
             search_index.query_vector(embedder, video=str(clips[1]),
                                       at_seconds=0.5,
                                       video_modality="audio")[0]]
  expected = _hits(search_index.Searcher(str(tmp_path / "in_process")),
                   queries)
  assert expected[0][0][:3] == (made[1], "image", 1.0)
  for name in ("runner", "from_embeddings"):
    searcher = search_index.Searcher(str(tmp_path / name))
    assert len(searcher) == len(search_index.Searcher(
        str(tmp_path / "in_process")))
    have = _contents(tmp_path / name)
    want = _contents(tmp_path / "in_process")
    assert sorted(have) == sorted(want), name
    for item, vector in want.items():
      testing.assert_close_normwise(have[item], vector, tiny_avenet_bound,
                                    what=f"{name} {item}")
    got = _hits(searcher, queries)
    for want_hits, got_hits in zip(expected, got):
      _assert_same_hits(got_hits, want_hits, name, tiny_avenet_bound)
    state = index_store.IndexDir(str(tmp_path / name)).state()
    assert list(state["failed"]) == [str(videos / "broken.mp4")], name
