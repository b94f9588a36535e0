"""Training precision (`train.precision`): the Keras dtype policy and loss scaling.

  float32   full precision everywhere (default; CPUs and the reference).
  bfloat16  bfloat16 compute, float32 variables ("mixed_bfloat16"): TPUs,
            Ampere and newer GPUs (A100, H100, L4, RTX 30xx+), CPUs with
            AMX / avx512_bf16. Same exponent range as float32: no scaling.
  float16   float16 compute, float32 variables ("mixed_float16") with dynamic
            loss scaling (`keras.optimizers.LossScaleOptimizer`): GPUs
            without fast bfloat16 (V100, T4, RTX 20xx).

Both training loops (`l3_tf.training.train`, `l3_tf.evaluation.baselines`) set the policy with
`policy_scope` and build their optimizer through `wrap_optimizer`; their step
computes gradients of `optimizer.scale_loss(loss)` and hands them, still
scaled, to `optimizer.apply_gradients`. A Keras 3 `LossScaleOptimizer` then
unscales them, skips a step whose gradients overflowed (halving the scale) and
doubles the scale after `train.loss_scale_growth_steps` finite steps; other
optimizers return the loss unchanged from `scale_loss`.

`train.mixed_precision` (a bool, before `precision` existed) still reads:
true means "bfloat16" and warns with `DeprecatedConfigWarning`.
"""

import contextlib
import warnings

import keras
import tensorflow as tf

PRECISIONS = ("float32", "bfloat16", "float16")
_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16",
             "float16": "mixed_float16"}


class DeprecatedConfigWarning(FutureWarning):
  """A config field that still works but has been replaced."""


def resolve(train_config) -> str:
  """The precision a `TrainConfig` asks for, validated.

  Args:
    train_config: an `l3_tf.training.config.TrainConfig`.

  Returns:
    One of PRECISIONS.

  Raises:
    ValueError: an unknown precision, `mixed_precision=true` together with
      `precision="float16"`, or bad loss-scale settings.
  """
  precision = train_config.precision
  if precision not in PRECISIONS:
    raise ValueError(f"train.precision={precision!r}; expected one of "
                     f"{list(PRECISIONS)}")
  if train_config.mixed_precision:
    if precision == "float16":
      raise ValueError(
          "train.mixed_precision=true (bfloat16, deprecated) contradicts "
          "train.precision='float16'; drop train.mixed_precision")
    warnings.warn(
        "train.mixed_precision is deprecated: it was replaced by "
        "train.precision ('float32', 'bfloat16' or 'float16'); "
        "mixed_precision=true reads as precision='bfloat16'",
        DeprecatedConfigWarning, stacklevel=2)
    precision = "bfloat16"
  if precision == "float16":
    if not train_config.loss_scale_initial > 0:
      raise ValueError(f"train.loss_scale_initial="
                       f"{train_config.loss_scale_initial} must be > 0")
    if train_config.loss_scale_growth_steps < 1:
      raise ValueError(f"train.loss_scale_growth_steps="
                       f"{train_config.loss_scale_growth_steps} must be >= 1")
  return precision


def policy_name(precision: str) -> str:
  """The Keras dtype policy of a precision ("mixed_float16", ...)."""
  if precision not in _POLICIES:
    raise ValueError(f"precision={precision!r}; expected one of "
                     f"{list(PRECISIONS)}")
  return _POLICIES[precision]


@contextlib.contextmanager
def policy_scope(precision: str):
  """Sets Keras' global dtype policy for `precision`; restores it after.

  Models must be built inside the scope (layers take the policy when they
  are created).
  """
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy(policy_name(precision))
  try:
    yield
  finally:
    keras.mixed_precision.set_global_policy(previous)


def wrap_optimizer(optimizer: keras.optimizers.Optimizer, precision: str,
                   train_config) -> keras.optimizers.Optimizer:
  """`optimizer`, wrapped in a dynamic `LossScaleOptimizer` for float16.

  Build the result (`optimizer.build(variables)`) before restoring a
  checkpoint, as for any Keras 3 optimizer. A float16 checkpoint holds the
  loss scale (`optimizer/dynamic_scale`) and its inner optimizer under
  `optimizer/inner_optimizer`, so float16 runs resume only as float16.

  Args:
    optimizer: the optimizer of the run (Adam).
    precision: one of PRECISIONS (see `resolve`).
    train_config: gives `loss_scale_initial`, `loss_scale_growth_steps`.
  """
  if precision != "float16":
    return optimizer
  return keras.optimizers.LossScaleOptimizer(
      optimizer, initial_scale=float(train_config.loss_scale_initial),
      dynamic_growth_steps=int(train_config.loss_scale_growth_steps))


def check_resume(checkpoint: str | None, optimizer) -> None:
  """Fails, naming both precisions, when `checkpoint` cannot be restored into
  `optimizer` because only one of them is float16 (loss-scaled).

  Raises:
    ValueError: a float16 checkpoint resumed without float16, or the reverse.
  """
  if checkpoint is None:
    return
  saved_scaled = any(name.startswith("optimizer/dynamic_scale/")
                     for name, _ in tf.train.list_variables(checkpoint))
  scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
  if saved_scaled != scaled:
    saved = "float16" if saved_scaled else "float32 or bfloat16"
    now = "float16" if scaled else "float32 or bfloat16"
    raise ValueError(
        f"checkpoint {checkpoint} was written with train.precision={saved} "
        f"but this run has {now}: resume with the precision it was written "
        "with (a float16 checkpoint also holds the loss scale)")


def loss_scale(optimizer) -> float | None:
  """The current loss scale of a wrapped optimizer (None if unscaled)."""
  if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
    return float(keras.ops.convert_to_numpy(optimizer.dynamic_scale))
  return None
