"""No figure from non-finite numbers: the one check of weights and outputs.

A model whose weights hold NaN or inf, or whose finite weights overflow in
the forward pass (one Adam step at a learning rate of 1e30 leaves such
weights), gives NaN logits and embeddings; an accuracy, a score or a
nearest neighbour computed from them is a wrong number that looks like any
other. Every consumer of a checkpoint or an export checks here:

* `check_variables` when it loads the weights (naming the first variable
  that holds a NaN or inf);
* `check_model` when it restores a Keras AVC network: its weights, then one
  forward pass on a fixed probe pair (`probe_inputs`);
* `check_outputs` before it turns outputs into a figure or a file (naming
  the first non-finite output and where it is).

All raise `NonFiniteError`, a `ValueError`: the binaries exit 1 with its
message, and nothing is written.
"""

from typing import Iterable

import numpy as np

from l3_tf.model import networks

# The probe pair's seed: the same pair every time.
_PROBE_SEED = 0


class NonFiniteError(ValueError):
  """A model's weights or outputs hold NaN or inf; no figure is made.

  Attributes:
    source: the checkpoint, export or model it came from.
    what: the variable or output named.
  """

  def __init__(self, source: str, what: str, message: str):
    self.source = source
    self.what = what
    super().__init__(f"{source}: {message}")


# A float32 output at the limit is an overflow in disguise: max pooling
# turns NaN activations into -3.4e38 (its start value), which is finite.
_FLOAT32_LIMIT = float(np.finfo(np.float32).max)


def _bad(values: np.ndarray, at_limit: bool) -> np.ndarray:
  """bool: NaN or inf, or (`at_limit`) +-3.4e38."""
  bad = ~np.isfinite(values)
  return bad | (np.abs(values) >= _FLOAT32_LIMIT) if at_limit else bad


def first_nonfinite(values: np.ndarray, at_limit: bool = False
                    ) -> tuple[int, ...] | None:
  """The index of the first NaN or inf of `values` (C order; `at_limit`:
  or +-3.4e38, the float32 limit, an overflow); None: none."""
  values = np.asarray(values)
  if values.dtype.kind not in "fc":
    return None
  bad = _bad(values, at_limit)
  if not bad.any():
    return None
  flat = int(np.argmax(bad.reshape(-1)))
  return tuple(int(i) for i in np.unravel_index(flat, values.shape))


def _count(values: np.ndarray, at_limit: bool = False) -> str:
  return f"{int(np.count_nonzero(_bad(values, at_limit)))} of {values.size}"


def check_outputs(values, what: str, source: str,
                  allowed_rows: np.ndarray | None = None) -> np.ndarray:
  """`values` (a numpy array) when all finite, else `NonFiniteError`.

  +-3.4e38, the float32 limit, counts as non-finite here: max pooling turns
  NaN activations into it (its start value), so an export whose
  activations are NaN returns it as an "embedding".

  Args:
    values: outputs of a model, [n, ...].
    what: what they are, e.g. "logits" or "audio_embedding embedding_6144".
    source: the checkpoint or export that computed them.
    allowed_rows: optional bool [n]: rows that may be non-finite because
      their input was (a NaN sample gives a NaN row by contract).

  Raises:
    NonFiniteError: naming `source`, `what`, the first non-finite entry and
      how many there are.
  """
  values = np.asarray(values)
  checked = values
  if allowed_rows is not None and values.ndim:
    checked = np.where(
        np.reshape(allowed_rows, (-1,) + (1,) * (values.ndim - 1)), 0, values)
  index = first_nonfinite(checked, at_limit=True)
  if index is None:
    return values
  raise NonFiniteError(
      source, what,
      f"{what}{list(index)} is {values[index]} ({_count(checked, True)} "
      "values are NaN, inf or at the float32 limit) although the inputs are "
      "finite: the model computes non-finite outputs (diverged or damaged "
      "weights)")


def check_variables(variables: Iterable, source: str) -> None:
  """Raises `NonFiniteError` naming the first variable holding NaN or inf.

  Args:
    variables: `tf.Variable`s (or (name, array) pairs).
    source: the checkpoint or export they were loaded from.
  """
  for variable in variables:
    if isinstance(variable, tuple):
      name, value = variable
    else:
      name = getattr(variable, "path", None) or variable.name
      value = variable.numpy()
    value = np.asarray(value)
    index = first_nonfinite(value)
    if index is not None:
      raise NonFiniteError(
          source, name,
          f"variable {name} holds NaN or inf ({_count(value)} values, the "
          f"first {value[index]} at {list(index)}): these weights compute "
          "no usable number; train again or use an earlier checkpoint")


def named_variables(model) -> list[tuple[str, np.ndarray]]:
  """(name, value) of every variable of a Keras model, named through the
  layer that holds it ("audio_tower/conv1_1/kernel": the two towers' own
  paths are the same)."""
  named, seen = [], set()
  for layer in model.layers:
    for variable in layer.variables:
      if id(variable) not in seen:
        seen.add(id(variable))
        named.append((f"{layer.name}/{variable.path}", variable.numpy()))
  for variable in model.variables:  # any held by the model itself
    if id(variable) not in seen:
      seen.add(id(variable))
      named.append((variable.path, variable.numpy()))
  return named


def probe_inputs(image_shape, spectrogram_shape, batch: int = 1
                 ) -> dict[str, np.ndarray]:
  """A fixed, typical network input: an image in [-1, 1] and a
  log-spectrogram around -2 (the scale of the front end's output)."""
  rng = np.random.default_rng(_PROBE_SEED)
  return {
      "image": rng.uniform(-1, 1, (batch,) + tuple(image_shape)
                           ).astype(np.float32),  # [b, 224, 224, 3]
      "spectrogram": rng.normal(-2, 1, (batch,) + tuple(spectrogram_shape)
                                ).astype(np.float32),  # [b, 257, 199, 1]
  }


def check_model(model, source: str) -> None:
  """Weights finite, and one forward pass on the probe pair finite: every
  tap of both towers (the embeddings) and the logits.

  Args:
    model: an `avc_network` (inputs "image" and "spectrogram").
    source: the checkpoint it was restored from.

  Raises:
    NonFiniteError: a variable, a tap or the probe pair's logits not finite.
  """
  check_variables(named_variables(model), source)
  shapes = {tensor.name: tensor.shape[1:] for tensor in model.inputs}
  inputs = probe_inputs(shapes["image"], shapes["spectrogram"])
  vision, audio, _ = networks.towers_of(model)
  # A tower can overflow while the logits stay finite (softmax of inf).
  for tower, name in ((vision, "image"), (audio, "spectrogram")):
    for key, value in tower(inputs[name], training=False).items():
      check_outputs(np.asarray(value, np.float32),
                    f"the probe pair's {tower.name} {key}", source)
  logits = np.asarray(model(inputs, training=False), np.float32)  # [1, 2]
  check_outputs(logits, "the probe pair's logits", source)


def check_classifier(model, source: str) -> None:
  """Weights finite, and its outputs on the probe input finite, for a model
  whose inputs are named "image" and/or "spectrogram" (the supervised
  classifiers of the baselines, a fine-tuned audio tower).

  Raises:
    NonFiniteError: a variable or an output on the probe input not finite.
  """
  check_variables(named_variables(model), source)
  shapes = {tensor.name: tensor.shape[1:] for tensor in model.inputs}
  unknown = set(shapes) - {"image", "spectrogram"}
  if unknown:
    raise ValueError(f"model {model.name!r} has inputs {sorted(unknown)}: "
                     "the probe has an 'image' and a 'spectrogram'")
  probe = probe_inputs(shapes.get("image", (224, 224, 3)),
                       shapes.get("spectrogram", (257, 199, 1)))
  inputs = ({name: probe[name] for name in shapes} if len(shapes) > 1
            else probe[next(iter(shapes))])
  outputs = model(inputs, training=False)
  if not isinstance(outputs, dict):
    outputs = {"output": outputs}
  for key, value in outputs.items():
    check_outputs(np.asarray(value, np.float32),
                  f"the probe input's {model.name} {key}", source)
