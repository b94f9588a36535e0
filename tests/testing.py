"""Helpers shared by the tests of l3_tf, data_prep and experiments."""

import os
import pathlib

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# Real recordings live beside the project, never inside it (see README).
SHARED_DATA = pathlib.Path(
    os.environ.get("L3_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def shared_data(name: str) -> pathlib.Path:
  """Path of ../shared/data/<name>; skips the calling test when absent."""
  import pytest  # only tests call this

  path = SHARED_DATA / name
  if not path.is_dir():
    pytest.skip(f"real data folder {path} is absent")
  return path


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
