"""The learning-rate schedule of a training run: warm-up, then constant or
a half cosine (`train.warmup_steps`, `train.learning_rate_decay`)."""

import keras
import numpy as np
import tensorflow as tf


LEARNING_RATE_DECAYS = ("constant", "cosine")


@keras.saving.register_keras_serializable(package="l3_tf")
class WarmupThenDecay(keras.optimizers.schedules.LearningRateSchedule):
  """Linear warm-up to `peak`, then constant or a half cosine to the end.

  Step s (the optimizer's `iterations` before its update: 0 for the first
  step) gets `peak * (s + 1) / warmup_steps` while s < warmup_steps, so the
  first step already moves; after it, `peak` ("constant") or
  `final + (peak - final) * (1 + cos(pi * p)) / 2` ("cosine") with p the
  fraction of the post-warm-up steps done and `final = final_fraction *
  peak`. A function of the step alone: a resumed run continues it exactly.
  """

  def __init__(self, peak: float, num_steps: int, warmup_steps: int = 0,
               decay: str = "constant", final_fraction: float = 0.0):
    self.peak = float(peak)
    self.num_steps = int(num_steps)
    self.warmup_steps = int(warmup_steps)
    self.decay = decay
    self.final_fraction = float(final_fraction)

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    warm = self.peak * (step + 1.0) / max(self.warmup_steps, 1)
    if self.decay == "cosine":
      final = self.final_fraction * self.peak
      done = tf.clip_by_value(
          (step - self.warmup_steps)
          / max(self.num_steps - self.warmup_steps, 1), 0.0, 1.0)
      after = final + (self.peak - final) * 0.5 * (1.0 + tf.cos(np.pi * done))
    else:
      after = tf.constant(self.peak)
    return tf.where(step < self.warmup_steps, warm, after)

  def get_config(self) -> dict:
    return {"peak": self.peak, "num_steps": self.num_steps,
            "warmup_steps": self.warmup_steps, "decay": self.decay,
            "final_fraction": self.final_fraction}


def learning_rate_schedule(train_cfg):
  """Adam's learning rate for a `TrainConfig`: a float when it is constant
  from the first step (the paper), else a `WarmupThenDecay`."""
  if not train_cfg.warmup_steps and train_cfg.learning_rate_decay == "constant":
    return train_cfg.learning_rate
  return WarmupThenDecay(train_cfg.learning_rate, train_cfg.num_steps,
                         train_cfg.warmup_steps, train_cfg.learning_rate_decay,
                         train_cfg.final_learning_rate_fraction)


def set_configured_rate(optimizer, train_cfg) -> float | None:
  """After a restore: a constant learning rate is a variable of the
  optimizer, so the checkpoint's came back; the config's (`--set
  train.learning_rate=...` on resume) is set again. A warm-up / decay
  schedule is a function of the step, taken from the config anyway.

  Returns:
    the checkpoint's rate when it differed (and was replaced), else None.
  """
  configured = learning_rate_schedule(train_cfg)
  if not isinstance(configured, float):
    return None
  previous = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
  if np.float32(previous) == np.float32(configured):
    return None
  optimizer.learning_rate = configured
  return previous
