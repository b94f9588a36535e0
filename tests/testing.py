"""Helpers shared by the tests of l3_tf, data_prep and experiments."""

import os
import pathlib

import pytest

from l3_tf.platform import cpu_features

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# Real recordings live beside the project, never inside it (see README).
SHARED_DATA = pathlib.Path(
    os.environ.get("L3_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def skip_unless_bf16_runs() -> None:
  """Skips (with the reason) where bfloat16 ops cannot run on this CPU's
  kernels: oneDNN capped below avx512_core on an AVX-512 CPU
  (`cpu_features.bf16_blocked_by_isa_cap`; the CI leg that reproduces an
  AVX2-only CPU's float32 kernels, run on an AVX-512 machine)."""
  blocked = cpu_features.bf16_blocked_by_isa_cap()
  if blocked:
    pytest.skip(f"bfloat16 kernels cannot run here: {blocked}")


def shared_data(name: str) -> pathlib.Path:
  """Path of ../shared/data/<name>; skips the calling test when absent."""
  import pytest  # only tests call this

  path = SHARED_DATA / name
  if not path.is_dir():
    pytest.skip(f"real data folder {path} is absent")
  return path


def assert_close_normwise(actual, expected, bound: float, *, axis=-1,
                          floor: float = 0.0, what: str = "values"):
  """||actual - expected|| <= bound * ||expected|| + floor, row by row.

  For two evaluations of one computation whose round-off is bounded
  normwise (`compiled_check.forward_bound`): one row is one output vector
  (the norms run over `axis`, every other axis indexes rows). `floor` is an
  absolute allowance, only for rows whose expected norm can be ~0 while the
  computation's intermediate values are not (the caller derives it:
  bound x the scale of those values). A routing bug (another frame, window
  or weights) moves a row by O(its norm), far beyond any bound < 1.

  Raises:
    AssertionError: naming the worst row, its error, its allowance and
      their ratio.
  """
  import numpy as np

  actual = np.asarray(actual, np.float64)
  expected = np.asarray(expected, np.float64)
  if actual.shape != expected.shape:
    raise AssertionError(f"{what}: shape {actual.shape} != expected "
                         f"{expected.shape}")
  if not np.all(np.isfinite(actual) == np.isfinite(expected)):
    raise AssertionError(f"{what}: not finite where expected is, or the "
                         "other way round")
  finite = np.isfinite(expected)
  actual, expected = np.where(finite, actual, 0), np.where(finite, expected, 0)
  error = np.linalg.norm(actual - expected, axis=axis)
  allowed = bound * np.linalg.norm(expected, axis=axis) + floor
  ratio = np.atleast_1d(error / np.maximum(allowed, np.finfo(np.float64).tiny))
  worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
  if ratio[worst] > 1:
    raise AssertionError(
        f"{what}: row {worst if len(worst) > 1 else worst[0]} differs by "
        f"{np.atleast_1d(error)[worst]:.3g} (normwise), allowed "
        f"{np.atleast_1d(allowed)[worst]:.3g} = {bound:.3g} x its norm + "
        f"{floor:.3g}: ratio {ratio[worst]:.3g}; {int(np.sum(ratio > 1))} of "
        f"{ratio.size} rows beyond")
  return float(ratio.max()) if ratio.size else 0.0


def assert_probability_close(actual, expected, bound: float, logits, *,
                             slack: float = 0.0, what: str = "probability"):
  """P = softmax(logits)[..., 1] computed two ways, from logits within
  `bound` normwise (`compiled_check.forward_bound`).

  P = sigmoid(l1 - l0) and sigmoid' <= 1/4, so |dP| <= |d(l1 - l0)| / 4
  <= sqrt(2) ||dl|| / 4 <= sqrt(2) / 4 x bound x ||l|| (per row; `logits`
  [..., 2] of `expected`, e.g. from `head_logits`). `slack`: an absolute
  allowance the caller derives (e.g. printed decimals).

  Returns:
    The largest ratio error / allowed.

  Raises:
    AssertionError: naming the worst row and its figures.
  """
  import numpy as np

  actual = np.atleast_1d(np.asarray(actual, np.float64))
  expected = np.atleast_1d(np.asarray(expected, np.float64))
  allowed = np.sqrt(2) / 4 * bound * np.linalg.norm(
      np.asarray(logits, np.float64).reshape(-1, 2), axis=-1) + slack
  error = np.abs(actual - expected)
  ratio = error / np.maximum(allowed, np.finfo(np.float64).tiny)
  worst = int(np.argmax(ratio))
  if not ratio[worst] <= 1:
    raise AssertionError(
        f"{what}: row {worst} is {actual[worst]:.9g}, expected "
        f"{expected[worst]:.9g}: {error[worst]:.3g} apart, allowed "
        f"{allowed[worst]:.3g} (ratio {ratio[worst]:.3g})")
  return float(ratio.max())


def unit_norm_tolerance(dim: int) -> float:
  """How far from 1 the norm of a float32 L2-normalised `dim`-vector may be.

  The sum of `dim` squares is within dim u of its value (u = 2^-24, the
  deterministic bound gamma_dim), its reciprocal square root within
  dim u / 2 plus the function's own error (2 u allowed, a few-ulp rsqrt),
  the scaling of each entry adds u, the float64 norm taken here nothing
  that counts: (dim / 2 + 4) u, 4.1e-6 for 128.
  """
  return (dim / 2 + 4) * 2.0**-24


def head_logits(avc, image_512, audio_512):
  """float64 [n, 2] logits of `avc`'s head (its Keras model) on the 512-d
  embeddings of n pairs: the scale `assert_probability_close` needs where a
  route returns probabilities only."""
  import numpy as np

  head = avc.get_layer("fusion_head")
  return np.asarray(head([np.asarray(image_512), np.asarray(audio_512)]),
                    np.float64)


def pair_logits(embedder, avc, images, windows):
  """`head_logits` of image/sound pairs embedded by `embedder`."""
  return head_logits(avc, embedder.embed_images(images, embedding=512),
                     embedder.embed_windows(windows, embedding=512))


def image_op_tolerance(height: int, width: int, resized: bool,
                       value_range: float = 2.0) -> float:
  """How far apart two float32 evaluations of an image op may be, per pixel
  (eagerly and in `Dataset.map`, say), for an input of height x width.

  Colour ops (conversion, scaling, brightness, the HSV round trip of
  saturation) are a few dozen roundings of values within `value_range`:
  32 u each. A (antialiased, bilinear) resize computes each sampling
  coordinate, up to max(h, w), to within ~2 max(h, w) u and its kernel
  weights from it: per dimension the weights move by at most about
  2 max(h, w) u in all, times neighbours at most `value_range` apart; two
  dimensions, and the two evaluations: 16 max(h, w) u x the range.
  A wrong crop, flip or frame moves pixels by O(the range).
  """
  u = 2.0**-24
  return value_range * u * (32 + (16 * max(height, width) if resized else 0))


def log_spectrogram_error_bound(waveforms, exact, params,
                                fft: bool = True):
  """Largest float32 error of a log spectrogram at each element.

  With u = 2^-24 and a frame's windowed samples x[n] w[n] (N = window
  length, w the Hann window):
  - the DFT convolution (`portable_log_spectrogram`): X[k] is a dot product
    of the N samples with a rounded basis |B[n, k]| <= w[n], within
    (N + 1) u sum |x[n]| w[n] of the exact one, real and imaginary parts
    together sqrt(2) times that;
  - an FFT of length M (`tf.signal`): within log2(M) eta / (1 - log2(M) eta)
    of |X|_2 = sqrt(M) |x w|_2 in every bin, eta = u + gamma_4 (sqrt 2 + u)
    (Higham, "Accuracy and Stability of Numerical Algorithms", Thm 24.2).
  The magnitude's square, sum and root add 3 u m; log(m + c) turns an error
  d of m into d / (m + c - d) (c = log_offset keeps it conditioned); the
  offset's sum, the log and the scale round once more each.

  Args:
    waveforms: [batch, samples] the spectrogram was computed from.
    exact: [batch, bins, frames, 1] its float64 log spectrogram
      (`l3_tf.data.audio_reference.log_spectrogram`).
    params: the `AudioParams`.
    fft: True for `tf.signal`'s FFT, False for the DFT convolution.

  Returns:
    [batch, bins, frames, 1], beside `exact` (the float64 log spectrogram).
  """
  import numpy as np

  u = np.finfo(np.float32).eps / 2
  n = params.window_length_samples
  window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)
  starts = params.hop_length_samples * np.arange(exact.shape[2])
  frames = waveforms.astype(np.float64)[:, starts[:, None] + np.arange(n)]
  if fft:
    stages = np.log2(params.fft_length)
    eta = u + 4 * u / (1 - 4 * u) * (np.sqrt(2) + u)
    per_frame = (stages * eta / (1 - stages * eta) * np.sqrt(params.fft_length)
                 * np.sqrt((frames ** 2) @ window ** 2))  # [batch, frames]
  else:
    per_frame = np.sqrt(2) * (n + 1) * u * (np.abs(frames) @ window)
  magnitude = np.exp(exact[..., 0] / params.log_scale) - params.log_offset
  error = per_frame[:, None, :] + 3 * u * magnitude  # [batch, bins, frames]
  shifted = magnitude + params.log_offset
  assert np.all(error < shifted)  # the bound stays finite
  bound = (params.log_scale * (error + u * shifted) / (shifted - error)
           + 3 * u * np.abs(exact[..., 0]))
  return bound[..., None]


def build_video_folder(data_dir: str, videos, name: str = "all_train"):
  """`video_folder` over the videos under `videos`, all in its train split.

  Returns:
    The prepared builder (TFDS name `video_folder/<name>`).
  """
  import tensorflow_datasets as tfds

  from data_prep import video_builder
  from data_prep.video_folder import video_folder_dataset_builder

  builder = video_folder_dataset_builder.Builder(
      data_dir=str(data_dir), num_workers=2, config=video_builder.VideoConfig(
          name=name, split_fractions=(1.0, 0.0, 0.0)))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(videos)))
  return builder


def tiny_config(width_multiplier: float = 1 / 32):
  """The `test` experiment config narrowed to `width_multiplier`."""
  import dataclasses

  from experiments import configs

  config = configs.get_config("test")
  return dataclasses.replace(config, model=dataclasses.replace(
      config.model, width_multiplier=width_multiplier))


def make_trained_workdir(workdir: str, width_multiplier: float = 1 / 32,
                         steps: int = 3, seed: int = 0,
                         fusion: str = "concat"):
  """A training workdir holding a tiny, briefly trained AVC network.

  A few Adam steps on random pairs (training=True) make the weights and the
  BN moving statistics differ from their initial values, so that tests of
  export and embedding see a model whose inference path is non-trivial.

  `fusion` "distance" makes it an AVE-Net.

  Returns:
    (config, the trained float32 `avc_network`).
  """
  import dataclasses

  import keras
  import numpy as np
  import tensorflow as tf

  from l3_tf.model import networks as model_lib
  from l3_tf.training import workdir as workdir_lib

  config = tiny_config(width_multiplier)
  config = dataclasses.replace(config, model=dataclasses.replace(
      config.model, fusion=fusion))
  keras.utils.set_random_seed(seed)
  avc = model_lib.avc_network(config.model, config.image, config.audio)
  optimizer = keras.optimizers.Adam(1e-3)
  loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  rng = np.random.default_rng(seed)
  batch = 4
  for _ in range(steps):
    inputs = {
        "image": tf.constant(rng.uniform(-1, 1, (batch, 224, 224, 3)),
                             tf.float32),
        "spectrogram": tf.constant(
            rng.normal(-2, 1, (batch,) + config.audio.spectrogram_shape),
            tf.float32),
    }
    labels = tf.constant(np.arange(batch) % 2)
    with tf.GradientTape() as tape:
      loss = loss_fn(labels, avc(inputs, training=True))
    grads = tape.gradient(loss, avc.trainable_variables)
    optimizer.apply_gradients(zip(grads, avc.trainable_variables))
  workdir_lib.write_config(workdir, config)
  step = tf.Variable(steps, dtype=tf.int64)
  tf.train.CheckpointManager(
      tf.train.Checkpoint(model=avc, step=step),
      workdir_lib.checkpoint_dir(workdir), max_to_keep=1).save()
  return config, avc


_AUDIO_CODECS = {".wav": ("pcm_s16le", "s16"), ".flac": ("flac", "s16"),
                 ".ogg": ("libopus", "flt"), ".mp3": ("libmp3lame", "fltp"),
                 ".m4a": ("aac", "fltp")}


def _audio_frames(waveform, sample_rate_hz: int, sample_format: str,
                  frame_size: int):
  """Mono float waveform -> PyAV audio frames of `frame_size` samples."""
  import av
  import numpy as np

  waveform = np.clip(np.asarray(waveform, np.float32), -1, 1)
  for begin in range(0, waveform.size, frame_size):
    chunk = waveform[begin:begin + frame_size]
    if sample_format == "s16":
      data = np.round(chunk * 32767).astype(np.int16)[np.newaxis]
    else:
      data = chunk[np.newaxis]
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data),
                                       format=sample_format, layout="mono")
    frame.sample_rate = sample_rate_hz
    frame.pts = begin
    yield frame


def write_moving_video(path, seed: int, seconds: float = 3.2, fps: int = 8,
                       sample_rate_hz: int = 48000) -> str:
  """A 64 x 96 H.264 + AAC mp4 whose colours and chirp differ with `seed`
  and whose frames change over time (a square moves)."""
  import numpy as np

  from data_prep.synthetic_av import generate

  rng = np.random.default_rng(seed)
  count = int(seconds * fps)
  frames = np.zeros((count, 64, 96, 3), np.uint8)
  base = rng.integers(0, 256, 3)
  for i in range(count):
    frames[i] = base
    frames[i, 8:40, 2 * i:2 * i + 32] = 255 - base
  t = np.arange(int(seconds * sample_rate_hz)) / sample_rate_hz
  f0 = rng.uniform(200, 2000)
  sound = 0.3 * np.sin(2 * np.pi * (f0 * t + 300 * t ** 2))
  generate.write_mp4(str(path), frames, sound.astype(np.float32), fps,
                     crf=18)
  return str(path)


def write_audio(path, waveform, sample_rate_hz: int) -> str:
  """Writes a mono float waveform in [-1, 1]; the codec follows the
  extension (.wav PCM, .flac, .ogg Opus, .mp3, .m4a AAC)."""
  import os

  import av

  extension = os.path.splitext(str(path))[1].lower()
  if extension not in _AUDIO_CODECS:
    raise ValueError(f"{path}: extension {extension!r} not in "
                     f"{sorted(_AUDIO_CODECS)}")
  codec, sample_format = _AUDIO_CODECS[extension]
  with av.open(str(path), "w") as container:
    stream = container.add_stream(codec, rate=sample_rate_hz, layout="mono")
    frame_size = stream.codec_context.frame_size or 1024
    for frame in _audio_frames(waveform, sample_rate_hz, sample_format,
                               frame_size):
      container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
  return str(path)



# A synthetic_av set simplified through the generator's knobs so that a tiny
# network learns the AVC task (and where the sound is) in a few hundred
# steps: one object per video, always visible and sounding, loud, over a
# plain background, four classes.
EASY_SYNTHETIC = dict(num_train=32, num_validation=2, num_test=12,
                      num_classes=4, seconds_per_video=3.0,
                      objects_per_video=(1, 1), snr_db_range=(20.0, 30.0),
                      clutter=0, visual_noise=0.0, gap_probability=0.0)


def easy_synthetic_config(data_dir: str, dataset: str, steps: int = 200,
                          fusion: str = "concat"):
  """A tiny AVC experiment on `EASY_SYNTHETIC` that trains in about a minute.

  Derived from the `test` config: a 1/16-width network on small inputs
  (frames with a short side of 96, 84 x 84 crops; 129 x 100 spectrograms
  from 5 ms windows every 10 ms), Adam 3e-3, batch 16. A short side of 96
  gives a 12 x 12 localisation grid, fine enough for objects of a quarter
  of the frame (at 64, the 8 x 8 grid misses them by a cell often).
  `fusion` "distance" trains the AVE-Net variant instead of L3.
  """
  import dataclasses

  from experiments import configs

  base = configs.get_config("test")
  return dataclasses.replace(
      base, name="easy_synthetic",
      model=dataclasses.replace(base.model, width_multiplier=1 / 16,
                                batch_norm_momentum=0.9, fusion=fusion),
      image=dataclasses.replace(base.image, resize_short_side=96,
                                crop_size=84),
      audio=dataclasses.replace(base.audio, window_seconds=0.005,
                                hop_seconds=0.01, fft_length=256),
      data=dataclasses.replace(base.data, dataset=dataset, data_dir=data_dir,
                               eval_split="test", group_videos=4,
                               shuffle_videos=64, pairs_per_video=2,
                               eval_num_pairs=64, eval_batch_size=32),
      train=dataclasses.replace(base.train, num_steps=steps,
                                batch_size_per_replica=16,
                                learning_rate=3e-3,
                                checkpoint_every_steps=steps,
                                log_every_steps=50,
                                summary_images_every_steps=0))


def train_easy_synthetic(root: str, steps: int = 200, fusion: str = "concat"):
  """Builds `EASY_SYNTHETIC` under `root` and trains `easy_synthetic_config`
  on it through the real `train.train_and_evaluate`.

  Returns:
    A namespace: workdir, config, builder, truth (the generator's ground
    truth), result (of train_and_evaluate), seconds (build, train).
  """
  import os
  import time
  import types

  import data_prep.synthetic_av as synthetic_av
  from l3_tf.training import train

  started = time.perf_counter()
  data_dir = os.path.join(root, "tfds")
  builder = synthetic_av.build(data_dir, "tiny", num_workers=2,
                               **EASY_SYNTHETIC)
  built = time.perf_counter()
  config = easy_synthetic_config(
      data_dir, f"synthetic_av/{builder.builder_config.name}", steps, fusion)
  workdir = os.path.join(root, "workdir")
  result = train.train_and_evaluate(config, workdir)
  return types.SimpleNamespace(
      workdir=workdir, config=config, builder=builder,
      truth=synthetic_av.ground_truth(builder), result=result,
      seconds={"build": built - started,
               "train": time.perf_counter() - built})


def set_checkpoint_value(workdir: str, variable: str = "audio_tower/conv1_1/kernel",
                         value: float = float("nan"), everywhere: bool = False
                         ) -> str:
  """Rewrites the latest checkpoint of `workdir` with `value` in `variable`.

  The first element of the variable (`everywhere`: all of it) is set; the
  rest of the checkpoint (optimizer, step, ...) is written back unchanged.
  Makes a NaN-weighted checkpoint (`value` NaN) or one with finite weights
  whose forward pass overflows (`value` 1e38 everywhere).

  Args:
    workdir: a training workdir (`make_trained_workdir` or a real run).
    variable: "<layer of the avc_network>/<variable path in it>", or
      "optimizer/<path>" (e.g. "optimizer/learning_rate").

  Returns:
    The checkpoint prefix rewritten.
  """
  import keras
  import numpy as np
  import tensorflow as tf

  from l3_tf.model import networks as model_lib
  from l3_tf.training import workdir as workdir_lib

  config = workdir_lib.read_config(workdir)
  prefix = workdir_lib.latest_checkpoint(workdir)
  avc = model_lib.avc_network(config.model, config.image, config.audio)
  objects = {"model": avc, "step": tf.Variable(0, dtype=tf.int64)}
  stored = {name.split("/")[0] for name, _ in tf.train.list_variables(prefix)}
  if "optimizer" in stored:  # a train.py checkpoint
    optimizer = keras.optimizers.Adam()
    optimizer.build(avc.trainable_variables)
    objects["optimizer"] = optimizer
  if "data_seed" in stored:
    objects["data_seed"] = tf.Variable(0, dtype=tf.int64)
  checkpoint = tf.train.Checkpoint(**objects)
  checkpoint.restore(prefix).assert_consumed()
  checkpoint.save_counter  # pylint: disable=pointless-statement  # restored, kept
  layer, path = variable.split("/", 1)
  if layer == "optimizer":  # "optimizer/learning_rate": after its own name
    target, = [v for v in objects["optimizer"].variables
               if v.path.split("/", 1)[-1] == path]
  else:
    target, = [v for v in avc.get_layer(layer).variables if v.path == path]
  array = np.array(target.numpy())
  if everywhere:
    array[...] = value
  else:
    array.flat[0] = value
  target.assign(array)
  checkpoint.write(prefix)
  return prefix


def set_export_value(path: str, signature: str = "audio_embedding",
                     value: float = float("nan"), everywhere: bool = False
                     ) -> str:
  """Rewrites an export's weights with `value` in the first element (or,
  `everywhere`, all) of the first variable `signature` reads (a NaN-weighted
  or an overflowing export); returns that variable's name."""
  import numpy as np
  import tensorflow as tf

  loaded = tf.saved_model.load(path)
  variable = loaded.signatures[signature].variables[0]
  array = np.array(variable.numpy())
  if everywhere:
    array[...] = value
  else:
    array.flat[0] = value
  variable.assign(array)
  # The variables of a SavedModel are a checkpoint of its root object.
  tf.train.Checkpoint(root=loaded).write(
      os.path.join(path, "variables", "variables"))
  return variable.name
