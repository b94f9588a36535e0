"""Sound-classification transfer end to end: builder -> Embedder -> SVMs.

A small generated labelled set in the ESC-10 layout (4 classes of distinct
sounds x 5 folds x 2 clips) goes through the real dataset builder, the real
feature path (`embed.Embedder` on a 1/16-width random network) and the protocol.
"""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from l3_tf.evaluation import audio_transfer
from l3_tf.evaluation import records
from l3_tf.evaluation import report
from l3_tf.evaluation import transfer
from l3_tf.evaluation import transfer_features
from l3_tf.model import networks as model_lib
from l3_tf.training import compiled_check
from tests import testing

RATE = 44100
CLASSES = ("001 - Low hum", "002 - Hiss", "003 - High beeps", "004 - Chirp")
SECONDS = 2.5  # 2 sub-clips at hop 1 s, 3 at hop 0.5 s... (1 + (2.5-1)/hop)


def _sound(kind: int, seed: int) -> np.ndarray:
  """Four kinds of sound with random pitch / level jitter per clip."""
  rng = np.random.default_rng(seed)
  t = np.arange(int(SECONDS * RATE)) / RATE
  jitter = rng.uniform(0.9, 1.1)
  if kind == 0:  # low harmonic hum
    wave = sum(np.sin(2 * np.pi * 110 * jitter * h * t) / h for h in (1, 2, 3))
  elif kind == 1:  # broadband hiss
    wave = rng.standard_normal(t.size)
  elif kind == 2:  # high beeps, 4 per second
    wave = np.sin(2 * np.pi * 3500 * jitter * t) * (np.sin(2 * np.pi * 4 * t) > 0)
  else:  # rising chirp, repeating every 0.5 s
    phase = np.cumsum(2 * np.pi * (500 + 3000 * ((t * 2) % 1)) * jitter) / RATE
    wave = np.sin(phase)
  wave = wave / np.max(np.abs(wave))
  level = rng.uniform(0.2, 0.5)
  return (level * wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def write_sound_set(root) -> int:
  """ESC-10 layout: 4 classes x 5 folds x 2 clips; returns the clip count."""
  count = 0
  for kind, folder in enumerate(CLASSES):
    os.makedirs(os.path.join(root, folder))
    for fold in range(1, 6):
      for take in "AB":
        testing.write_audio(os.path.join(root, folder,
                                         f"{fold}-{kind}{fold}-{take}.wav"),
                            _sound(kind, seed=100 * kind + 10 * fold + ord(take)),
                            RATE)
        count += 1
  return count


@pytest.fixture(scope="module")
def sound_set(tmp_path_factory):
  root = tmp_path_factory.mktemp("sounds")
  manual = root / "manual"
  num_clips = write_sound_set(manual)
  data_dir = str(root / "tfds")
  builder = audio_transfer.prepare_dataset("esc10", data_dir, str(manual))
  return {"root": root, "manual": manual, "builder": builder,
          "data_dir": data_dir, "num_clips": num_clips}


@pytest.fixture(scope="module")
def random_weights():
  return transfer_features.load_weights("random", testing.tiny_config(1 / 16))


@pytest.fixture(scope="module")
def audio_bound(random_weights):
  """How far apart (normwise) two routes through `random_weights`' audio
  tower may compute one embedding (`compiled_check.forward_bound` of that
  architecture)."""
  config = random_weights.config
  return compiled_check.forward_bound(
      model_lib.audio_tower(config.model, config.audio))


def test_prepared_dataset_is_reused_without_manual_dir(sound_set):
  again = audio_transfer.prepare_dataset("esc10", sound_set["data_dir"])
  assert again.info.splits["fold1"].num_examples == 8
  with pytest.raises(ValueError, match="not prepared .* --manual_dir"):
    audio_transfer.prepare_dataset("esc10", str(sound_set["root"] / "empty"))
  with pytest.raises(ValueError, match="dataset='esc11'"):
    audio_transfer.prepare_dataset("esc11", str(sound_set["root"]))


def test_protocol_far_above_chance_through_the_embedder(sound_set,
                                                        random_weights,
                                                        tmp_path, audio_bound):
  spec = audio_transfer.DATASETS["esc10"]
  cache = transfer_features.FeatureCache(str(tmp_path / "features"))
  results = audio_transfer.run(random_weights, sound_set["builder"], spec,
                               hop_seconds=1.0, cache=cache,
                               settings=transfer.SvmSettings(c_grid=(1e-3, 1.0)))
  assert results["features"]["num_clips"] == sound_set["num_clips"]
  # 2.5 s clips at hop 1 s, windows inside the clip: 1 + floor(1.5) = 2.
  assert results["features"]["num_subclips"] == 2 * sound_set["num_clips"]
  width = random_weights.config.model.widths[-1]
  assert results["features"]["dim"] == 4 * 3 * width  # the 6144 tap, narrowed
  assert len(results["fold_accuracies"]) == 5
  assert results["mean_accuracy"] >= 0.9  # chance is 0.25
  assert results["network"]["narrowed"] is True
  assert results["features"]["from_cache"] == {f"fold{k}": False
                                               for k in range(1, 6)}
  assert sorted(results["predictions"]) == sorted(
      f"{c}/{f}-{k}{f}-{t}.wav" for k, c in enumerate(CLASSES)
      for f in range(1, 6) for t in "AB")

  # The cached features are the ones the Embedder computes for each clip.
  data, _ = audio_transfer.dataset_features(random_weights,
                                            sound_set["builder"], spec, 1.0,
                                            cache=cache)
  clip = next(transfer_features.read_clips(sound_set["builder"], "fold1", 1))
  direct = random_weights.embedder.embed_audio(
      clip["waveform"], 48000, hop_seconds=1.0, center=False).embedding
  # embed_audio adds a zero-padded window over the last 0.5 s; the
  # protocol's sub-clips are the windows inside the clip (cover_end=False).
  assert direct.shape[0] == 3
  direct = direct[:2]
  row = list(data.clip_ids).index(clip["clip_id"])
  testing.assert_close_normwise(data.features[data.clip_index == row],
                                direct, audio_bound, what="cached features")


def test_second_run_with_other_svm_settings_reads_the_cache(sound_set,
                                                            random_weights,
                                                            tmp_path,
                                                            monkeypatch):
  spec = audio_transfer.DATASETS["esc10"]
  cache = transfer_features.FeatureCache(str(tmp_path / "features"))
  first = audio_transfer.run(random_weights, sound_set["builder"], spec, 1.0,
                             transfer.SvmSettings(c_grid=(1.0,)), cache)

  def no_network(*args, **kwargs):
    raise AssertionError("features recomputed despite the cache")

  monkeypatch.setattr(random_weights.embedder, "embed_windows", no_network)
  second = audio_transfer.run(random_weights, sound_set["builder"], spec, 1.0,
                              transfer.SvmSettings(c_grid=(1e-4, 1e-2)), cache)
  assert all(second["features"]["from_cache"].values())
  assert tuple(second["settings"]["c_grid"]) == (1e-4, 1e-2)
  assert second["features"]["num_subclips"] == first["features"]["num_subclips"]
  # Another hop is another key: it would need the network.
  with pytest.raises(AssertionError, match="recomputed"):
    audio_transfer.run(random_weights, sound_set["builder"], spec, 0.5,
                       transfer.SvmSettings(c_grid=(1.0,)), cache)


def test_cache_key_sees_everything_that_determines_features(sound_set,
                                                           random_weights,
                                                           tmp_path):
  builder = sound_set["builder"]

  def key(weights=random_weights, split="fold1", hop=1.0, center=False,
          max_clips=None):
    return transfer_features.identity_key(transfer_features.feature_identity(
        weights, builder, split, hop, center, max_clips))

  def with_identity(**changes):
    return dataclasses.replace(random_weights,
                               identity={**random_weights.identity, **changes})

  model = random_weights.identity["model"]
  variants = [key(split="fold2"), key(hop=0.5), key(center=True),
              key(max_clips=3), key(with_identity(seed=1)),
              key(with_identity(compute_dtype="bfloat16")),
              key(with_identity(model={**model, "width_multiplier": 0.5})),
              key(with_identity(audio_params={"fft_length": 1024}))]
  assert key() not in variants and len(set(variants)) == len(variants)
  assert key() == key()
  assert random_weights.identity["seed"] == 0
  assert random_weights.identity["model"]["width_multiplier"] == 1 / 16
  # A trained workdir: its checkpoint (path, step, content) is in the key.
  workdir = str(tmp_path / "workdir")
  testing.make_trained_workdir(workdir, steps=1)
  trained = transfer_features.load_weights(workdir, testing.tiny_config())
  identity = trained.identity
  assert identity["kind"] == "workdir" and identity["step"] == 1
  assert identity["checkpoint"].endswith("ckpt-1")
  assert len(identity["checkpoint_index_sha256"]) == 64
  assert trained.training_step == 1 and "step 1" in trained.description


def test_binary_end_to_end_with_record(sound_set, tmp_path):
  out = tmp_path / "out"
  record_path = tmp_path / "results" / "esc10_random.json"
  command = [
      sys.executable, "-m", "experiments.audio_transfer", "--dataset=esc10",
      f"--manual_dir={sound_set['manual']}", "--weights=random",
      "--random_config=test", f"--output_dir={out}",
      f"--cache_dir={tmp_path / 'cache'}",
      f"--data_dir={sound_set['data_dir']}", "--c_grid=0.001,1",
      "--max_clips_per_split=6", f"--record={record_path}"]
  run = subprocess.run(command, capture_output=True, text=True, timeout=300)
  assert run.returncode == 0, run.stderr[-3000:]
  results = json.loads((out / "results.json").read_text())
  assert len(results["fold_accuracies"]) == 5
  assert results["features"]["num_clips"] == 30
  assert results["network"]["widths"] == [2, 4, 8, 16]  # the test config
  assert results["timing"]["run_seconds"] > 0
  assert "experiments.audio_transfer" in results["command"]
  # --svm_solver=auto: 24 training clips' Gram matrix fits; each round says.
  assert results["settings"]["solver"] == "auto"
  assert [r["solver"] for r in results["rounds"]] == ["gram"] * 5
  assert (out / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
  record = records.read_records(str(record_path.parent))[0]
  assert record["method"] == "Ours random"
  assert record["details"]["svm_solver"] == ["gram"] * 5
  assert record["details"]["unconverged_fits"] == 0
  assert record["value"] == results["mean_accuracy"]
  assert "subset (first 6 clips per split)" in record["scale"]["data"]
  assert record["scale"]["network"].startswith("narrowed x0.03125")
  assert record["scale"]["training"].startswith("untrained")


@pytest.mark.parametrize("name, write, rounds, test_clips", [
    ("dcase2013_scenes", "write_dcase2013", [[2]], [3]),
    ("esc50", "write_esc50", [[1], [2], [3], [4], [5]], [3, 3, 3, 3, 3]),
])
def test_official_protocol_of_each_dataset(tmp_path, random_weights, name,
                                           write, rounds, test_clips):
  from data_prep import dummy_media
  getattr(dummy_media, write)(str(tmp_path / "manual"))
  builder = audio_transfer.prepare_dataset(name, str(tmp_path / "tfds"),
                                           str(tmp_path / "manual"))
  results = audio_transfer.run(random_weights, builder,
                               audio_transfer.DATASETS[name], 1.0,
                               transfer.SvmSettings(c_grid=(1.0,)))
  assert [r["test_folds"] for r in results["rounds"]] == rounds
  assert [r["num_test_clips"] for r in results["rounds"]] == test_clips
  # 0.5 s clips: one zero-padded 1-second window each.
  assert results["features"]["num_subclips"] == results["features"]["num_clips"]


@pytest.fixture(scope="module")
def us8k(tmp_path_factory):
  """The dummy UrbanSound8K release, built (10 folds x 2 clips)."""
  from data_prep import dummy_media
  root = tmp_path_factory.mktemp("us8k")
  dummy_media.write_urbansound8k(str(root / "manual"))
  builder = audio_transfer.prepare_dataset("urbansound8k",
                                           str(root / "tfds"),
                                           str(root / "manual"))
  return {"root": root, "builder": builder}


def _us8k_variant(tmp_path, change):
  """A dummy release changed by `change(manual_dir)`, built."""
  from data_prep import dummy_media
  manual = tmp_path / "manual"
  dummy_media.write_urbansound8k(str(manual))
  change(manual)
  return audio_transfer.prepare_dataset("urbansound8k", str(tmp_path / "tfds"),
                                        str(manual))


def test_urbansound8k_leave_one_fold_out_with_centred_short_clips(
    us8k, random_weights, audio_bound):
  spec = audio_transfer.DATASETS["urbansound8k"]
  results = audio_transfer.run(random_weights, us8k["builder"], spec, 1.0,
                               transfer.SvmSettings(c_grid=(1.0,)))
  assert [r["test_folds"] for r in results["rounds"]] == [
      [k] for k in range(1, 11)]
  assert [r["num_test_clips"] for r in results["rounds"]] == [2] * 10
  # Clips of 0.4, 1.0, 1.5 and 0.75 s: one window each at hop 1 s.
  assert results["features"]["num_subclips"] == 20
  assert results["folds"]["used"] == list(range(1, 11))
  assert results["folds"]["official"] is False  # 2 clips per fold
  assert results["folds"]["generated"] is True  # dummy_media's marker
  record = audio_transfer.make_record(results, random_weights)
  assert record["method"] == "Ours random"
  assert record["details"]["generated"] is True
  data = record["scale"]["data"]
  assert data.startswith("generated data (data_prep.dummy_media), not "
                         "UrbanSound8K: urbansound8k full; not the official "
                         "figure: 20 clips"), data
  # The results table says so in the row's "measured at" (data) column.
  row = next(line for line in report.render_table([record]).splitlines()
             if "| UrbanSound8K | Ours random |" in line)
  assert f"data: {data}; network:" in row
  # A record written before "generated" was recorded reads as real data.
  del results["folds"]["generated"]
  assert audio_transfer.data_scale(results).startswith(
      "urbansound8k full (not the official release's clips per fold: 20 ")

  # A 0.4 s clip sits in the middle of its window: 12,000 zeros on each
  # side (floor(28800 / 2) before, the rest after), as OpenL3's classifiers.
  data, _ = audio_transfer.dataset_features(random_weights, us8k["builder"],
                                            spec, 1.0)
  clip = next(c for c in transfer_features.read_clips(us8k["builder"], "fold1")
              if c["waveform"].size == 19200)
  windows = transfer_features.subclip_windows(clip["waveform"], 1.0,
                                           random_weights.config.audio)
  assert windows.shape == (1, 48000)
  np.testing.assert_array_equal(windows[0, 14400:33600], clip["waveform"])
  assert not windows[0, :14400].any() and not windows[0, 33600:].any()
  row = list(data.clip_ids).index(clip["clip_id"])
  testing.assert_close_normwise(
      data.features[data.clip_index == row],
      random_weights.embedder.embed_windows(windows,
                                            transfer_features.EMBEDDING),
      audio_bound, what="centred short clip's features")


def test_urbansound8k_folds_subset_and_mlp(us8k, random_weights):
  from experiments import configs
  spec = audio_transfer.DATASETS["urbansound8k"]
  results = audio_transfer.run(random_weights, us8k["builder"], spec, 1.0,
                               configs.get_mlp_config("test"),
                               folds=[10, 1, 2])
  assert [r["test_folds"] for r in results["rounds"]] == [[1], [2], [10]]
  assert results["classifier"] == "mlp"
  assert results["subset"] == {"folds": [1, 2, 10]}
  # Fold 1 tests, fold 10 (the one before it) validates, fold 2 trains.
  assert results["rounds"][0]["validation"] == "fold 10"
  assert results["rounds"][1]["validation"] == "fold 1"
  record = audio_transfer.make_record(results, random_weights)
  assert record["method"] == "Ours random (MLP)"
  assert "folds [1, 2, 10] only" in record["scale"]["data"]
  assert record["details"]["classifier"] == "mlp"
  with pytest.raises(ValueError, match=r"folds=\[1, 11\]: expected at "
                     "least two of urbansound8k's folds 1..10"):
    audio_transfer.run(random_weights, us8k["builder"], spec, 1.0,
                       folds=[1, 11])
  with pytest.raises(ValueError, match="esc10 has no split|has no folds"):
    audio_transfer.fold_splits(us8k["builder"],
                               audio_transfer.DATASETS["dcase2013_scenes"],
                               [1, 2])


def test_urbansound8k_missing_fold_runs_on_the_others(tmp_path,
                                                      random_weights):
  import shutil
  builder = _us8k_variant(
      tmp_path, lambda manual: shutil.rmtree(manual / "audio" / "fold7"))
  results = audio_transfer.run(random_weights, builder,
                               audio_transfer.DATASETS["urbansound8k"], 1.0,
                               transfer.SvmSettings(c_grid=(1.0,)))
  assert [r["test_folds"] for r in results["rounds"]] == [
      [k] for k in range(1, 11) if k != 7]
  assert results["folds"]["missing_from_build"] == [7]
  record = audio_transfer.make_record(results, random_weights)
  assert "folds [7] missing from the build" in record["scale"]["data"]
  # Asking for the missing fold is an error, not a silent 2-fold run.
  with pytest.raises(ValueError, match=r"folds \[7\] are not in the build"):
    audio_transfer.fold_splits(builder,
                               audio_transfer.DATASETS["urbansound8k"],
                               [1, 7])


def test_generated_release_of_official_fold_sizes_is_never_official(
    tmp_path, monkeypatch):
  """`dummy_media.write_urbansound8k_full` writes the official clips per
  fold (here a spec of 2 per fold stands in for the 8732 clips): its build
  is recorded generated, never official; the same files without the marker
  are the official figure's."""
  from data_prep import dummy_media
  from data_prep import generated
  monkeypatch.setattr(dummy_media, "US8K_FOLD_SIZES", (2,) * 10)
  # Two classes, so that 20 clips (seeded) hold every class id 0..n-1.
  monkeypatch.setattr(dummy_media, "US8K_ALL_CLASSES", ("hum", "siren"))
  spec = dataclasses.replace(audio_transfer.DATASETS["urbansound8k"],
                             fold_sizes=(2,) * 10)
  manual = tmp_path / "manual"
  dummy_media.write_urbansound8k_full(str(manual))
  builder = audio_transfer.prepare_dataset("urbansound8k",
                                           str(tmp_path / "generated"),
                                           str(manual))
  _, info = audio_transfer.fold_splits(builder, spec)
  assert info["clips_per_fold"] == {k: 2 for k in range(1, 11)}
  assert info["generated"] is True and info["official"] is False
  (manual / generated.MARKER).unlink()
  real = audio_transfer.prepare_dataset("urbansound8k", str(tmp_path / "real"),
                                        str(manual))
  _, info = audio_transfer.fold_splits(real, spec)
  assert info["generated"] is False and info["official"] is True


def test_urbansound8k_recording_in_two_folds_fails_loudly(tmp_path,
                                                         random_weights):
  def leak(manual):  # fold 2's first clip: recording 100, as fold 1's
    meta = manual / "metadata" / "UrbanSound8K.csv"
    meta.write_text(meta.read_text().replace("200-2-0-0.wav,200,",
                                             "200-2-0-0.wav,100,"))

  builder = _us8k_variant(tmp_path, leak)
  with pytest.raises(ValueError, match=r"source recording 100 .* test folds "
                     r"\[1\] .*'100-1-0-0.wav'.* training fold 2 "
                     r"\('200-2-0-0.wav'\)"):
    audio_transfer.run(random_weights, builder,
                       audio_transfer.DATASETS["urbansound8k"], 1.0,
                       transfer.SvmSettings(c_grid=(1.0,)))


@pytest.mark.slow  # a fresh TensorFlow process
def test_binary_urbansound8k_mlp_on_some_folds(us8k, tmp_path):
  out = tmp_path / "out"
  record_path = tmp_path / "results" / "us8k.json"
  command = [
      sys.executable, "-m", "experiments.audio_transfer",
      "--dataset=urbansound8k", "--weights=random", "--random_config=test",
      f"--data_dir={us8k['root'] / 'tfds'}", f"--output_dir={out}",
      f"--cache_dir={tmp_path / 'cache'}", "--classifier=mlp",
      "--mlp_config=test", "--folds=1,2,10", "--hop_seconds=1",
      f"--record={record_path}"]
  run = subprocess.run(command, capture_output=True, text=True, timeout=300)
  assert run.returncode == 0, run.stderr[-3000:]
  results = json.loads((out / "results.json").read_text())
  assert results["classifier"] == "mlp"
  assert results["settings"]["name"] == "test"
  assert results["folds"]["used"] == [1, 2, 10]
  assert results["timing"]["features_seconds"] > 0
  assert results["timing"]["classifier_seconds"] > 0
  assert results["folds"]["generated"] is True
  assert json.loads(run.stdout.split("TRANSFER_RESULT ")[1])["generated"]
  record = records.read_records(str(record_path.parent))[0]
  assert record["method"] == "Ours random (MLP)"
  assert "folds [1, 2, 10] only" in record["scale"]["data"]
  assert record["scale"]["data"].startswith("generated data")
  bad = subprocess.run(command[:-3] + ["--folds=1,12"], capture_output=True,
                       text=True, timeout=300)
  assert bad.returncode != 0
  assert "folds=[1, 12]" in bad.stderr
  # The SVMs on the cached features: UrbanSound8K's default choice of C is
  # OpenL3's validation fold (the fold before the test fold, cyclically
  # over the folds run), solved without the Gram matrix when asked.
  svm_command = [a for a in command if not a.startswith(
      ("--classifier", "--mlp_config"))] + [
          "--classifier=svm", "--svm_solver=primal", "--c_grid=0.01,1"]
  run = subprocess.run(svm_command, capture_output=True, text=True,
                       timeout=300)
  assert run.returncode == 0, run.stderr[-3000:]
  results = json.loads((out / "results.json").read_text())
  assert results["settings"]["selection"] == "validation_fold"
  assert [r["c_chosen_on"] for r in results["rounds"]] == [
      "fold 10", "fold 1", "fold 2"]
  assert [r["solver"] for r in results["rounds"]] == ["primal"] * 3
  assert all(results["features"]["from_cache"].values())


def test_release_sized_dummy_matches_the_official_fold_sizes():
  """`dummy_media.write_urbansound8k_full` (the timing release) writes the
  clips per fold that make a build count as the official one."""
  from data_prep import dummy_media  # pylint: disable=g-import-not-at-top
  spec = audio_transfer.DATASETS["urbansound8k"]
  assert dummy_media.US8K_FOLD_SIZES == spec.fold_sizes
  assert sum(spec.fold_sizes) == 8732
