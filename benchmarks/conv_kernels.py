"""The training step's convolutions, kernel by kernel: TensorFlow vs PyTorch.

For every 3x3 conv of both towers (the shapes `l3_tf.model.networks.avc_network`
trains at `--width_multiplier` and `--batch_size`), times its three passes
one kernel at a time: forward, input gradient (not for the first conv of a
tower, which the step never computes) and kernel gradient. TensorFlow runs
the ops its training step runs (`Conv2D`, `Conv2DBackpropInput`,
`Conv2DBackpropFilter`; oneDNN's on x86); PyTorch (the `bench` extra) runs
`conv2d` and `convolution_backward` on channels-last tensors. Kernels are
timed interleaved (TF, torch, TF, torch, ...), median of `--repeats`
after one warm-up call each.

It then times this project's whole training step and the PyTorch peer's
(`benchmarks/peer_pytorch.py`), interleaved, in the same run, and prints:
- per pass, the summed seconds of each library and their ratio;
- "conv_sum_over_project_step": the TF conv kernels' summed time over the
  project's step time. Near 1 means everything else in the step (BatchNorm,
  ReLU, pooling, head, optimizer) is hidden behind the convolutions by the
  two towers' ops overlapping on the inter-op threads; above 1, the overlap
  even gains on the kernels run one at a time;
- "pytorch_step_over_tf_conv_sum": PyTorch's step over the TF conv kernels'
  sum: project / PyTorch if the step took exactly its convolutions' time.

It answers "which kernel is slower, and whose kernel is it": the kernels are
TensorFlow's build of oneDNN, not this project's code. Each TF kernel is
timed as one `tf.function` call, whose fixed cost is included; at narrow
widths, where a kernel takes a few milliseconds, the TF sums are inflated
by it (1/8 width, batch 8: the TF kernels summed to 1.9x the whole step),
so read the per-kernel figures at full width.

  python benchmarks/conv_kernels.py --dtype=mixed_bfloat16
      [--width_multiplier=1] [--batch_size=16] [--repeats=3] [--steps=3]
"""

from experiments import quiet_logs  # first: before TensorFlow loads  # noqa: F401

import json

from absl import app
from absl import flags

import keras
import tensorflow as tf

from benchmarks import model_step
from l3_tf.model import networks as model_lib
from l3_tf.platform import cpu_features

# --batch_size, --width_multiplier, --dtype (float32 | mixed_bfloat16) and
# --steps (timed whole steps of each library; 0: kernels only) are
# benchmarks/model_step.py's flags.
_REPEATS = flags.DEFINE_integer("repeats", 3, "timed calls per kernel")

PASSES = ("forward", "input_gradient", "kernel_gradient")


def conv_shapes(config: model_lib.ModelConfig, batch: int) -> list[dict]:
  """Every conv of both towers, read from the model itself: name,
  [b, h, w, c_in], c_out, and whether it is its tower's first."""
  network = model_lib.avc_network(config)
  shapes = []
  for tower in ("vision_tower", "audio_tower"):
    convs = [layer for layer in network.get_layer(tower).layers
             if isinstance(layer, keras.layers.Conv2D)]
    for index, layer in enumerate(convs):
      _, height, width, c_in = layer.input.shape
      shapes.append({"name": f"{tower.split('_')[0]}/{layer.name}",
                     "input": [batch, height, width, c_in],
                     "c_out": layer.filters, "first": index == 0})
  return shapes


def _tf_kernels(shape: dict, dtype: tf.DType) -> dict:
  """pass -> a callable running TF's kernel once (result fetched)."""
  b, h, w, c_in = shape["input"]
  c_out = shape["c_out"]
  x = tf.cast(tf.random.normal([b, h, w, c_in], seed=1), dtype)
  kernel = tf.cast(tf.random.normal([3, 3, c_in, c_out], seed=2), dtype)
  dy = tf.cast(tf.random.normal([b, h, w, c_out], seed=3), dtype)
  strides = [1, 1, 1, 1]
  ops = {
      "forward": tf.function(lambda: tf.raw_ops.Conv2D(
          input=x, filter=kernel, strides=strides, padding="SAME")),
      "input_gradient": tf.function(lambda: tf.raw_ops.Conv2DBackpropInput(
          input_sizes=[b, h, w, c_in], filter=kernel, out_backprop=dy,
          strides=strides, padding="SAME")),
      "kernel_gradient": tf.function(lambda: tf.raw_ops.Conv2DBackpropFilter(
          input=x, filter_sizes=[3, 3, c_in, c_out], out_backprop=dy,
          strides=strides, padding="SAME")),
  }
  return {name: (lambda op=op: op().numpy()) for name, op in ops.items()}


def _torch_kernels(shape: dict, bfloat16: bool) -> dict:
  """pass -> a callable running PyTorch's kernel once."""
  import torch

  b, h, w, c_in = shape["input"]
  c_out = shape["c_out"]
  dtype = torch.bfloat16 if bfloat16 else torch.float32
  last = torch.channels_last
  x = torch.randn(b, c_in, h, w).to(dtype).contiguous(memory_format=last)
  kernel = torch.randn(c_out, c_in, 3, 3).to(dtype).contiguous(
      memory_format=last)
  dy = torch.randn(b, c_out, h, w).to(dtype).contiguous(memory_format=last)

  def backward(mask):
    with torch.no_grad():
      torch.ops.aten.convolution_backward(
          dy, x, kernel, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask)

  def forward():
    with torch.no_grad():
      torch.nn.functional.conv2d(x, kernel, padding=1)

  return {"forward": forward,
          "input_gradient": lambda: backward([True, False, False]),
          "kernel_gradient": lambda: backward([False, True, False])}


def compare_kernels(shapes: list[dict], bfloat16: bool,
                    repeats: int) -> list[dict]:
  """Per conv and pass: seconds of TF's and PyTorch's kernel."""
  rows = []
  for shape in shapes:
    ours = _tf_kernels(shape, tf.bfloat16 if bfloat16 else tf.float32)
    theirs = _torch_kernels(shape, bfloat16)
    row = {"name": shape["name"], "input": shape["input"],
           "c_out": shape["c_out"]}
    for name in PASSES:
      if name == "input_gradient" and shape["first"]:
        continue
      seconds = model_step.interleaved_medians(
          {"tensorflow": ours[name], "pytorch": theirs[name]}, 1, repeats)
      row[name] = {k: round(v, 4) for k, v in seconds.items()}
    rows.append(row)
  return rows


def totals(rows: list[dict]) -> dict:
  """Per pass and overall: summed seconds of each library, their ratio."""
  result = {}
  for name in PASSES + ("all",):
    passes = PASSES if name == "all" else (name,)
    ours = sum(row[p]["tensorflow"] for row in rows for p in passes if p in row)
    theirs = sum(row[p]["pytorch"] for row in rows for p in passes if p in row)
    result[name] = {"tensorflow": round(ours, 3), "pytorch": round(theirs, 3),
                    "pytorch_over_tensorflow": round(theirs / ours, 3)}
  return result


def compare_steps(config: model_lib.ModelConfig, batch: int, bfloat16: bool,
                  repeats: int) -> dict:
  """Median seconds of the project's and the peer's step, interleaved."""
  import peer_pytorch  # benchmarks/, the `bench` extra

  project, _ = model_step._keras_step(  # pylint: disable=protected-access
      config, batch, "mixed_bfloat16" if bfloat16 else "float32")
  peer, _ = peer_pytorch.make_training_step(config.widths, batch,
                                            bfloat16=bfloat16)
  seconds = model_step.interleaved_medians(
      {"project": project, "pytorch": peer}, 2, repeats)
  return {name: round(value, 3) for name, value in seconds.items()}


def main(argv):
  del argv
  import torch

  # pylint: disable=protected-access
  batch, width = model_step._BATCH.value, model_step._WIDTH.value
  dtype, step_repeats = model_step._DTYPE.value, model_step._STEPS.value
  # pylint: enable=protected-access
  # Every kernel is its own tf.function, traced once by design: no retracing
  # warnings.
  tf.get_logger().setLevel("ERROR")
  features = cpu_features.cpu_features()
  bfloat16 = dtype == "mixed_bfloat16"
  if bfloat16 and not features.has_bf16_units:
    raise SystemExit(f"--dtype={dtype}: this CPU ({features.model}) has no "
                     "bf16 units (AMX or AVX512-BF16); use --dtype=float32")
  config = model_lib.ModelConfig(width_multiplier=width)
  rows = compare_kernels(conv_shapes(config, batch), bfloat16,
                         _REPEATS.value)
  summed = totals(rows)
  result = {"cpu": features.as_dict(), "tensorflow": tf.__version__,
            "torch": torch.__version__, "dtype": dtype, "batch_size": batch,
            "width_multiplier": width, "kernels": rows, "totals": summed}
  if step_repeats:
    steps = compare_steps(config, batch, bfloat16, step_repeats)
    conv_seconds = summed["all"]["tensorflow"]
    result["step_seconds"] = steps
    result["project_over_pytorch"] = round(steps["pytorch"] / steps["project"],
                                           3)
    result["conv_sum_over_project_step"] = round(
        conv_seconds / steps["project"], 3)
    result["pytorch_step_over_tf_conv_sum"] = round(
        steps["pytorch"] / conv_seconds, 3)
  print(json.dumps(result))


if __name__ == "__main__":
  app.run(main)
