"""L3-Net (Look, Listen and Learn) in TensorFlow 2 / Keras 3.

The names most users call, in one place:

    import l3_tf
    embedder = l3_tf.load("runs/flickr/export")       # or a training workdir
    audio = embedder.embed_audio(waveform, sample_rate_hz=44100)
    config = l3_tf.apply_overrides(l3_tf.Config(), ["train.num_steps=1000"])
    l3_tf.train_and_evaluate(config, "runs/mine", strategy)

Everything else lives in the subpackages, which read like the paper:
`data` (media, front ends, pairs, the input pipeline), `model` (towers and
fusion heads), `training` (the loop, distribution, workdir, config),
`analysis` (units, localisation), `serving` (exports, embeddings, scores,
search) and `evaluation` (the paper's protocols and the results report);
`platform` holds the doors to the outside (object storage, stack
differences, CPU features). The names below load on first use, so
`import l3_tf.data.media_video` does not import TensorFlow's training stack.
"""

import importlib

from l3_tf.platform import cpu_features as _cpu_features

__version__ = "0.2.0"

# Before anything here loads TensorFlow: oneDNN's CPU kernels where
# TensorFlow would pick Eigen's (`cpu_features.prefer_onednn` says why; a
# TF_ENABLE_ONEDNN_OPTS the user set wins).
_cpu_features.prefer_onednn()

# public name -> (module, attribute)
_PUBLIC = {
    "Embedder": ("l3_tf.serving.embed", "Embedder"),
    "Config": ("l3_tf.training.config", "Config"),
    "DataConfig": ("l3_tf.training.config", "DataConfig"),
    "TrainConfig": ("l3_tf.training.config", "TrainConfig"),
    "ModelConfig": ("l3_tf.model.networks", "ModelConfig"),
    "apply_overrides": ("l3_tf.training.config", "apply_overrides"),
    "train_and_evaluate": ("l3_tf.training.train", "train_and_evaluate"),
    "make_strategy": ("l3_tf.training.distribute", "make_strategy"),
}

__all__ = sorted([*_PUBLIC, "load"])


def load(path: str, compute_dtype: str = "float32"):
  """An `Embedder` from an export (SavedModel) or a training workdir.

  The same as `l3_tf.serving.embed.Embedder.load(path, compute_dtype)`.
  """
  from l3_tf.serving import embed  # pylint: disable=g-import-not-at-top
  return embed.Embedder.load(path, compute_dtype=compute_dtype)


def __getattr__(name: str):
  if name in _PUBLIC:
    module, attribute = _PUBLIC[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups skip this function
    return value
  raise AttributeError(f"module 'l3_tf' has no attribute {name!r}")


def __dir__():
  return sorted([*globals(), *_PUBLIC])
