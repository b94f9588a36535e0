"""`l3-search`: index build + query round trip, resume, bad files, the CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from l3_tf.data import media_audio
from l3_tf.data import media_video
from l3_tf.serving import embed
from l3_tf.serving import embed_inputs
from l3_tf.serving import index_store
from l3_tf.serving import search_index
from tests import testing

RATE = 48000
FPS = 8
SECONDS = 3.2
HOP = 0.5
# Centred windows every 0.5 s until every sample of 3.2 s (+ 0.5 s of
# leading pad) is inside one (l3_tf.serving.embed's formula):
# 1 + ceil((3.2 + 0.5 - 1) / 0.5) = 7 per video.
WINDOWS_PER_VIDEO = 7


def _write_video(path, seed: int):
  """A video whose frames and sound differ with `seed` and over time."""
  return testing.write_moving_video(path, seed, SECONDS, FPS, RATE)


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
  root = tmp_path_factory.mktemp("collection")
  videos = root / "videos"
  (videos / "sub").mkdir(parents=True)
  paths = [_write_video(videos / "a.mp4", 1),
           _write_video(videos / "sub" / "b.mp4", 2)]
  (videos / "broken.mp4").write_bytes(b"not a video" * 100)
  (videos / "notes.txt").write_text("not media, not even tried")
  return root, videos, paths


@pytest.fixture(scope="module")
def embedder(tiny_avenet_export):
  return embed.Embedder.load(tiny_avenet_export.saved_model)


def test_embed_video_in_the_shared_space(embedder, collection, tiny_export,
                                         tiny_avenet_bound):
  """`embed_video(..., "shared")`, which the index stores, is the shared
  embedding of the video's sound windows and of its frames at their
  timestamps."""
  path = collection[2][0]
  video = embedder.embed_video(path, hop_seconds=HOP,
                               audio_embedding=embed.SHARED,
                               image_embedding=embed.SHARED)
  assert video.audio.shape == video.image.shape == (WINDOWS_PER_VIDEO, 128)
  params = embedder.audio_params
  waveform = embed_inputs.to_mono(media_audio.load_audio(
      path, sample_rate_hz=params.sample_rate_hz))
  windows = embed_inputs.extract_windows(
      waveform, embed_inputs.window_starts(waveform.size, HOP, True, params),
      params.clip_samples)  # [T, 48000]
  testing.assert_close_normwise(
      video.audio, embedder.shared_embedding(windows=windows),
      tiny_avenet_bound, what="shared audio embeddings")
  frames = media_video.frames_at(path, video.timestamps,
                           short_side=embedder.image_params.resize_short_side)
  testing.assert_close_normwise(
      video.image, embedder.shared_embedding(images=frames),
      tiny_avenet_bound, what="shared image embeddings")
  np.testing.assert_allclose(np.linalg.norm(video.image, axis=1), 1.0,
                             atol=testing.unit_norm_tolerance(128))
  with pytest.raises(ValueError, match="two different spaces"):
    embed.Embedder.load(tiny_export.saved_model).embed_video(
        path, audio_embedding=embed.SHARED, image_embedding=embed.SHARED)


def test_index_query_round_trip_rerun_and_resume(tiny_avenet_export, embedder,
                                                 collection, tmp_path,
                                                 tiny_avenet_bound):
  root, videos, (a, b) = collection
  index = str(tmp_path / "index")
  lines = []
  summary = search_index.index_videos(
      embedder, str(videos), index, tiny_avenet_export.saved_model,
      hop_seconds=HOP, progress=False, report=lines.append)
  assert sorted(summary.indexed) == sorted([a, b])
  assert [p for p, _ in summary.failed] == [str(videos / "broken.mp4")]
  assert any("broken.mp4" in line for line in lines)
  assert summary.vectors_added == 2 * 2 * WINDOWS_PER_VIDEO
  state = index_store.IndexDir(index).state()
  assert str(videos / "broken.mp4") in state["failed"]

  searcher = search_index.Searcher(index)
  assert len(searcher) == 2 * 2 * WINDOWS_PER_VIDEO
  items = searcher.items
  assert {(i.file, i.modality) for i in items} == {
      (f, m) for f in (a, b) for m in ("audio", "image")}
  np.testing.assert_allclose(
      sorted({i.time for i in items}), HOP * np.arange(WINDOWS_PER_VIDEO))

  # The frame of b at 1.0 s is in the index: it comes back first, at
  # distance ~0 (the two routes' vectors within the round-off bound of unit
  # vectors, the index's squared distance within 128 x eps32 x 4, see
  # below); so does the sound window of a centred on 1.5 s.
  near_zero = np.sqrt(tiny_avenet_bound**2
                      + 128 * np.finfo(np.float32).eps * 4)
  vector, modality = search_index.query_vector(embedder, video=b,
                                               at_seconds=1.0)
  assert modality == "image"
  hits = searcher.search(vector, k=5, modality="image")
  assert (hits[0].file, hits[0].time) == (b, 1.0)
  assert hits[0].distance <= near_zero
  assert all(h.modality == "image" for h in hits)
  assert [h.distance for h in hits] == sorted(h.distance for h in hits)
  vector, modality = search_index.query_vector(embedder, audio=a,
                                               at_seconds=1.5)
  assert modality == "audio"
  hits = searcher.search(vector, k=30)  # both modalities, merged
  assert (hits[0].file, hits[0].modality, hits[0].time) == (a, "audio", 1.5)
  assert {h.modality for h in hits} == {"audio", "image"}
  assert len(hits) == 2 * 2 * WINDOWS_PER_VIDEO
  # The ANN's answer is the exact one on this small index.
  raw = index_store.IndexDir(index).vectors(128)
  exact = np.argsort(np.linalg.norm(raw - vector, axis=1))[:5]
  assert [(items[i].file, items[i].modality, items[i].time) for i in exact] == [
      (h.file, h.modality, h.time) for h in hits[:5]]
  brute_force = searcher.search(vector, k=5, exact=True)
  assert [(items[i].file, items[i].modality, items[i].time) for i in exact] == [
      (h.file, h.modality, h.time) for h in brute_force]
  # Squared distances of unit vectors summed over 128 float32 terms, each
  # at most 4: |error| <= 128 * eps32 * 4 (the square root would magnify
  # the error of the near-zero first hit).
  np.testing.assert_allclose(
      np.square([h.distance for h in brute_force]),
      np.square(np.linalg.norm(raw.astype(np.float64) - vector, axis=1)[exact]),
      rtol=0, atol=128 * np.finfo(np.float32).eps * 4)

  # Rerun: nothing to do; the broken file is tried (and listed) again.
  again = search_index.index_videos(
      embedder, str(videos), index, tiny_avenet_export.saved_model,
      hop_seconds=HOP, progress=False, report=lines.append)
  assert sorted(again.skipped) == sorted([a, b]) and not again.indexed
  assert len(again.failed) == 1 and again.vectors_added == 0
  assert len(search_index.Searcher(index)) == 2 * 2 * WINDOWS_PER_VIDEO

  # A run that died after appending vectors but before recording the file:
  # the tail is cut back, the new video is indexed once.
  index_dir = index_store.IndexDir(index)
  index_dir.append(np.ones((3, 128), np.float32),
                   [index_store.Item("ghost", "audio", 0.0)] * 3)
  c = _write_video(videos / "c.mp4", 3)
  try:
    resumed = search_index.index_videos(
        embedder, str(videos), index, tiny_avenet_export.saved_model,
        hop_seconds=HOP, progress=False, report=lines.append)
  finally:
    os.remove(c)
  assert resumed.indexed == [c]
  searcher = search_index.Searcher(index)
  assert len(searcher) == 3 * 2 * WINDOWS_PER_VIDEO
  assert "ghost" not in {i.file for i in searcher.items}

  with pytest.raises(index_store.SearchIndexError, match="hop_seconds=0.5"):
    search_index.index_videos(embedder, str(videos), index,
                              tiny_avenet_export.saved_model, hop_seconds=0.25,
                              progress=False)


def test_l3_models_and_bad_queries_are_refused(tiny_export, embedder,
                                               collection, tmp_path):
  _, videos, (a, _) = collection
  l3 = embed.Embedder.load(tiny_export.saved_model)
  with pytest.raises(ValueError, match="two different spaces"):
    search_index.index_videos(l3, str(videos), str(tmp_path / "i"),
                              tiny_export.saved_model, progress=False)
  with pytest.raises(ValueError, match="exactly one"):
    search_index.query_vector(embedder, image=a, audio=a)
  with pytest.raises(index_store.SearchIndexError, match="not an l3-search"):
    search_index.Searcher(str(tmp_path))


def _cli(args):
  code = ("import sys; sys.argv[0] = 'l3-search'; "
          "from experiments.search import run; sys.exit(run())")
  env = dict(os.environ, PYTHONPATH=str(testing.REPO_ROOT))
  return subprocess.run([sys.executable, "-c", code, *args], env=env,
                        capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # two fresh TF processes
def test_cli_index_then_query_json(tiny_avenet_export, collection, tmp_path):
  _, videos, (a, b) = collection
  index = str(tmp_path / "index")
  result = _cli(["index", str(videos), f"--model={tiny_avenet_export.saved_model}",
                 f"--index={index}", f"--hop_seconds={HOP}", "--noprogress"])
  assert result.returncode == 1, result.stderr  # the broken file
  assert "2 indexed" in result.stderr and "broken.mp4" in result.stderr
  result = _cli(["query", index, f"--video={a}", "--at_seconds=2.0",
                 "--video_modality=audio", "--k=3", "--modality=audio",
                 "--json"])
  assert result.returncode == 0, result.stderr
  out = json.loads(result.stdout)
  assert out["query_modality"] == "audio" and len(out["hits"]) == 3
  assert out["hits"][0]["file"] == a and out["hits"][0]["time"] == 2.0
  assert {h["modality"] for h in out["hits"]} == {"audio"}


def test_console_script_is_declared():
  setup = (testing.REPO_ROOT / "setup.py").read_text()
  assert '"l3-search = experiments.search:run"' in setup
