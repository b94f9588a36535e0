"""`train.jit_compile`'s start-up self-check: XLA's training step against the
uncompiled one, within a float round-off bound (issue 22)."""

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from l3_tf.platform import cpu_features


# Confidence of the probabilistic round-off bound (Higham & Mary, "A new
# approach to probabilistic rounding error analysis", SIAM J. Sci. Comput.
# 41(5), 2019): each sum of n terms stays within lambda * sqrt(n) * u of its
# exact value except with probability at most 2 exp(-lambda^2 / 2) = 2.5e-14
# at lambda = 8, small enough over the ~1e10 roundings of a full-width step.
ROUNDOFF_CONFIDENCE = 8.0

# Unit round-off of each compute dtype: half the distance from 1 to the next
# number (2^-24 float32, 2^-11 float16, 2^-8 bfloat16).
_UNIT_ROUNDOFF = {"float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}


class CompiledStepMismatch(RuntimeError):
  """`train.jit_compile`: XLA's training step differs from the uncompiled one.

  Raised by `check_compiled_step` before any step is applied.
  """


def _weighted_layers(layer):
  """Every Conv2D and Dense layer inside `layer` (recursively)."""
  if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
    return [layer]
  return [inner for child in getattr(layer, "layers", [])
          for inner in _weighted_layers(child)]


def _fan_in(layer) -> int:
  """Terms of each output's sum in a Conv2D / Dense layer (kh x kw x c_in,
  or the units in)."""
  return int(np.prod(layer.kernel.shape[:-1]))


def _roundoff_bound(depth: int, longest: int, compute_dtype: str) -> float:
  """2 depth lambda sqrt(n) u: two paths' distance, each `depth` well
  conditioned stages of sums of at most `longest` terms from the exact."""
  if compute_dtype not in _UNIT_ROUNDOFF:
    raise ValueError(f"compute_dtype={compute_dtype!r}, expected one of "
                     f"{sorted(_UNIT_ROUNDOFF)}")
  return float(2 * depth * ROUNDOFF_CONFIDENCE * np.sqrt(longest)
               * _UNIT_ROUNDOFF[compute_dtype])


def _layers_of(model_or_layers) -> list:
  """The Conv2D / Dense layers of a model, a layer, or a list of either."""
  if isinstance(model_or_layers, (list, tuple)):
    layers = [inner for item in model_or_layers
              for inner in _weighted_layers(item)]
  else:
    layers = _weighted_layers(model_or_layers)
  if not layers:
    name = getattr(model_or_layers, "name", model_or_layers)
    raise ValueError(f"model {name!r} has no Conv2D or Dense layer")
  return layers


def compiled_step_bound(model: keras.Model, batch_size_per_replica: int,
                        compute_dtype: str = "float32") -> float:
  """How far apart (relative) two correct float paths of one step may be.

  XLA and TensorFlow's kernels compute the same step with their own summation
  orders and fused multiply-adds; neither is exact. With unit round-off u of
  the compute dtype and n the longest sum of the step (a conv's kernel
  gradient and its BN statistics sum over batch x height x width positions,
  a layer's output over its fan-in), each sum lands within
  lambda * sqrt(n) * u of the exact one (probabilistic bound,
  `ROUNDOFF_CONFIDENCE`), relative to the result when its terms cancel like
  a random walk. The error passes through the forward and backward pass of
  every weighted layer (depth d = 2 x layers), each well conditioned as BN
  renormalises every conv: each path is within d * lambda * sqrt(n) * u of
  the exact step, so the two within twice that.

  Args:
    model: the network (its Conv2D / Dense layers give n and d).
    batch_size_per_replica: pairs per replica.
    compute_dtype: "float32", "bfloat16" or "float16".

  Returns:
    2 d lambda sqrt(n) u; e.g. 7.8e-3 for the 1/32-width test network on
    8 pairs of 64x64 images and 65x99 spectrograms, 0.044 for the 1/8-width
    demo on 32 pairs (n = 32 x 257 x 199).
    bfloat16 and float16 give bounds near or above 1: there only
    finiteness is a check.
  """
  layers = _layers_of(model)
  longest = 1
  for layer in layers:
    shape = layer.output.shape  # [b, h, w, c] or [b, units]
    positions = int(np.prod(shape[1:-1])) if len(shape) > 2 else 1
    longest = max(longest, batch_size_per_replica * positions, _fan_in(layer))
  return _roundoff_bound(2 * len(layers), longest, compute_dtype)


def forward_bound(model_or_layers, compute_dtype: str = "float32") -> float:
  """How far apart (relative, normwise) two correct evaluations of one
  inference pass may be.

  The same network evaluated two ways (one example or a batch, an export or
  the Keras model, oneDNN's blocked kernels or Eigen's, another TensorFlow)
  sums the same products in other orders. In inference mode BN uses its
  moving statistics, a per-channel affine map, so no sum runs over the
  batch or the positions: the longest sum n is the largest fan-in
  (kh x kw x c_in of a conv, the inputs of a Dense layer; the L2
  normalisation and distance of an AVE-Net head sum as many terms as the
  Dense layer before them). As in `compiled_step_bound`, each sum lands
  within lambda * sqrt(n) * u of the exact one relative to its result
  (probabilistic bound, `ROUNDOFF_CONFIDENCE`), and each of the L weighted
  layers on the path passes that on, well conditioned (ReLU and max-pooling
  are 1-Lipschitz and do not amplify it, BN renormalises every conv): each
  evaluation is within L lambda sqrt(n) u of the exact output, so two of
  them within twice that.

  Args:
    model_or_layers: the network on the compared path (a Keras model or
      layer, or a list of them: e.g. just the vision tower when only image
      embeddings are compared); its Conv2D / Dense layers give n and L.
    compute_dtype: "float32", "bfloat16" or "float16".

  Returns:
    2 L lambda sqrt(n) u, relative to the norm of the output; e.g. 2.1e-4
    for the 1/32-width L3 network (18 weighted layers, n = 3 x 3 x 16 = 144)
    in float32.

  Raises:
    ValueError: no Conv2D or Dense layer, or an unknown `compute_dtype`.
  """
  layers = _layers_of(model_or_layers)
  longest = max(_fan_in(layer) for layer in layers)
  return _roundoff_bound(len(layers), longest, compute_dtype)


def roundoff_ratios(expected: dict[str, np.ndarray],
                    got: dict[str, np.ndarray], bound: float,
                    row_scales: dict[str, np.ndarray] | None = None
                    ) -> dict[str, float]:
  """Per output, the largest ratio of a row's difference to round-off.

  Row i (one example) of output `name` may differ by bound x s_i, where s_i
  is ||expected[name][i]|| (normwise relative; float64 norms) unless
  `row_scales[name]` gives it (e.g. a softmax probability, bounded through
  its logits).

  Args:
    expected / got: {output name: array [b, ...]}, the same names.
    bound: normwise relative round-off bound, e.g. `forward_bound(model)`.
    row_scales: {name: [b] norms} replacing the expected rows' norms.

  Returns:
    {name: largest ratio over rows}: <= 1 within round-off, 0 identical.
  """
  ratios = {}
  for name, value in expected.items():
    value = np.asarray(value, np.float64).reshape(len(value), -1)
    error = np.linalg.norm(np.asarray(got[name], np.float64).reshape(
        value.shape) - value, axis=-1)
    scale = (row_scales or {}).get(name)
    allowed = bound * (np.linalg.norm(value, axis=-1) if scale is None
                       else np.asarray(scale, np.float64))
    ratio = np.where(error == 0, 0.0,
                     error / np.maximum(allowed, np.finfo(np.float64).tiny))
    ratios[name] = float(np.max(ratio))
  return ratios


def _variable_names(model: keras.Model) -> list[str]:
  """`<sub-model>/<path>` of each trainable variable (the towers share paths)."""
  owner = {}
  for layer in model.layers:
    for variable in layer.trainable_variables:
      owner.setdefault(id(variable), layer.name)
  return [f"{owner[id(v)]}/{v.path}" if id(v) in owner else v.path
          for v in model.trainable_variables]


def check_compiled_step(compiled, reference, model: keras.Model, strategy,
                        features, labels, bound: float) -> dict:
  """Runs one step's forward and backward pass both ways; refuses a difference.

  Both run from the same weights on the same batch; the BN moving statistics
  are restored after each, nothing is applied. Run at start-up by a
  `train.jit_compile` run on its first batch, which it then trains on.

  Args:
    compiled: the XLA-compiled `make_gradients` function (the training
      step's own, `train_step.gradients`).
    reference: the uncompiled `make_gradients(model, ...)`.
    model: their model (built under `strategy`'s scope).
    strategy: the tf.distribute strategy.
    features, labels: one (distributed) batch.
    bound: the relative difference allowed (`compiled_step_bound`).

  Returns:
    {"relative_difference": |g_xla - g| / |g| over every gradient,
     "loss_difference": relative, "bound", "worst_variable",
     "inconclusive": True when the uncompiled step itself is not finite
     (then nothing is compared; that step is skipped as bad anyway)}.

  Raises:
    CompiledStepMismatch: a gradient or the loss is not finite in the
      compiled step only, or the two differ by more than `bound`; the
      message names the variable and the figures.
  """
  names = _variable_names(model)

  def restore(state):
    for variable, value in zip(model.non_trainable_variables, state):
      variable.assign(value)

  def replica(features, labels):
    state = [tf.identity(v) for v in model.non_trainable_variables]
    got, _, got_loss, _, _ = compiled(features, labels)
    restore(state)
    want, _, want_loss, _, _ = reference(features, labels)
    restore(state)
    stats = {"loss": tf.stack([got_loss, want_loss])}
    for key in ("difference", "norm", "bad_compiled", "bad_reference"):
      stats[key] = []
    for g, w in zip(got, want):
      if g is None or w is None:
        g = w = tf.zeros([])
      g, w = tf.cast(g, tf.float32), tf.cast(w, tf.float32)
      finite = tf.math.is_finite(g) & tf.math.is_finite(w)
      stats["difference"].append(tf.reduce_sum(tf.square(
          tf.where(finite, g - w, 0.0))))
      stats["norm"].append(tf.reduce_sum(tf.square(
          tf.where(tf.math.is_finite(w), w, 0.0))))
      stats["bad_compiled"].append(tf.reduce_sum(tf.cast(
          ~tf.math.is_finite(g), tf.float32)))
      stats["bad_reference"].append(tf.reduce_sum(tf.cast(
          ~tf.math.is_finite(w), tf.float32)))
    return {key: tf.stack(value) for key, value in stats.items()}

  @tf.function
  def both(features, labels):
    per_replica = strategy.run(replica, args=(features, labels))
    return {key: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
            for key, value in per_replica.items()}

  stats = {key: value.numpy() for key, value in both(features, labels).items()}
  got_loss, want_loss = (float(x) for x in stats["loss"])
  sizes = [int(np.prod(v.shape)) for v in model.trainable_variables]
  where = (f"TensorFlow {tf.__version__}, CPU "
           f"{cpu_features.cpu_features().model or 'unknown'}")
  if stats["bad_reference"].sum() or not np.isfinite(want_loss):
    logging.warning(
        "train.jit_compile self-check inconclusive: the uncompiled step on "
        "the first batch is not finite itself (loss %g; %d gradient entries)",
        want_loss, int(stats["bad_reference"].sum()))
    return {"relative_difference": None, "loss_difference": None,
            "bound": bound, "worst_variable": None, "inconclusive": True}
  if stats["bad_compiled"].sum() or not np.isfinite(got_loss):
    first = int(np.argmax(stats["bad_compiled"] > 0))
    raise CompiledStepMismatch(
        "train.jit_compile: the XLA-compiled training step differs from the "
        f"uncompiled one on this machine ({where}): "
        f"{int(stats['bad_compiled'].sum())} of {sum(sizes)} gradient entries "
        f"are not finite (first {names[first]}: "
        f"{int(stats['bad_compiled'][first])} of {sizes[first]}; loss "
        f"{got_loss:.6g}) where the uncompiled step's are all finite (loss "
        f"{want_loss:.6g}); train without XLA (train.jit_compile=false)")
  relative = float(np.sqrt(stats["difference"].sum()
                           / max(stats["norm"].sum(), np.finfo(np.float32).tiny)))
  loss_difference = abs(got_loss - want_loss) / max(abs(want_loss), 1e-30)
  worst = names[int(np.argmax(stats["difference"]))]
  if relative > bound or loss_difference > bound:
    raise CompiledStepMismatch(
        "train.jit_compile: the XLA-compiled training step differs from the "
        f"uncompiled one on this machine ({where}): gradients "
        f"{relative:.3g} apart relative to their norm (most in {worst}), loss "
        f"{got_loss:.6g} vs {want_loss:.6g} ({loss_difference:.3g} relative), "
        f"beyond the float round-off bound {bound:.3g}; train without XLA "
        "(train.jit_compile=false)")
  return {"relative_difference": relative, "loss_difference": loss_difference,
          "bound": float(bound), "worst_variable": worst,
          "inconclusive": False}
