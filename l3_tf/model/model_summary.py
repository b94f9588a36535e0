"""Human-readable facts about an L3 network: parameter counts per part."""

import keras

from l3_tf.model import networks as model_lib


def parameter_counts(avc: keras.Model) -> dict[str, int]:
  """Parameters of each part of an `avc_network` (BN statistics included)."""
  vision, audio, head = model_lib.towers_of(avc)
  return {
      "vision_tower": vision.count_params(),
      "audio_tower": audio.count_params(),
      "fusion_head": head.count_params(),
      "total": avc.count_params(),
      "trainable": sum(int(v.numpy().size) for v in avc.trainable_variables),
  }
