"""The same L3-Net in PyTorch: a peer for `benchmarks/model_step.py`.

Benchmarks only (the `bench` extra: `pip install -e '.[bench]'`, a CPU build
of torch); never imported by `l3_tf` or the tests.

The network is `l3_tf.model.networks.avc_network` layer for layer: per tower four
blocks of two 3x3 "same" convs without bias, each followed by BatchNorm
(eps 1e-3, the Keras default; momentum as the config's) and ReLU, 2x2 max
pooling after blocks 1-3, a global max pool to the 512-d embedding; the
fusion head concatenates the two embeddings, fc1 (128, ReLU), fc2 (2 logits).
Kernels are He-normal (fan-in) as in Keras, the weight decay is the same
explicit L2 term on every kernel (conv and dense) added to the loss, and the
optimizer is Adam with Keras' epsilon (1e-7). Activations are channels-last
(`torch.channels_last`), the layout oneDNN prefers on a CPU and the one the
Keras model uses. The 6144/8192-d transfer taps are not built: the training
loss does not use them (TensorFlow prunes them from the step's graph too).

  python benchmarks/peer_pytorch.py [--width_multiplier=0.125] [--batch_size=32]
"""

import contextlib
import json
import time

import numpy as np
import torch
from torch import nn


def _conv_bn_relu(c_in: int, c_out: int, momentum: float) -> list[nn.Module]:
  conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
  nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
  # Keras momentum m keeps m of the old statistics; torch's keeps 1 - m.
  return [conv, nn.BatchNorm2d(c_out, eps=1e-3, momentum=1.0 - momentum),
          nn.ReLU(inplace=True)]


class Tower(nn.Module):
  """[b, c, h, w] -> [b, widths[-1]]: the VGG-style trunk and pool4."""

  def __init__(self, channels: int, widths: tuple[int, ...], momentum: float):
    super().__init__()
    layers, c_in = [], channels
    for block, c_out in enumerate(widths):
      layers += _conv_bn_relu(c_in, c_out, momentum)
      layers += _conv_bn_relu(c_out, c_out, momentum)
      if block < len(widths) - 1:
        layers.append(nn.MaxPool2d(2, 2))
      c_in = c_out
    self.trunk = nn.Sequential(*layers)

  def forward(self, x):
    return torch.amax(self.trunk(x), dim=(2, 3))  # [b, c] global max pool


class AVCNetwork(nn.Module):
  """(image [b, 3, 224, 224], spectrogram [b, 1, 257, 199]) -> [b, 2]."""

  def __init__(self, widths: tuple[int, ...], fusion_units: int = 128,
               momentum: float = 0.99):
    super().__init__()
    self.vision = Tower(3, widths, momentum)
    self.audio = Tower(1, widths, momentum)
    self.fc1 = nn.Linear(2 * widths[-1], fusion_units)
    self.fc2 = nn.Linear(fusion_units, 2)
    nn.init.kaiming_normal_(self.fc1.weight, mode="fan_in", nonlinearity="relu")
    nn.init.zeros_(self.fc1.bias)
    nn.init.xavier_uniform_(self.fc2.weight)  # Keras' default (glorot)
    nn.init.zeros_(self.fc2.bias)

  def forward(self, image, spectrogram):
    joint = torch.cat([self.vision(image), self.audio(spectrogram)], dim=1)
    return self.fc2(torch.relu(self.fc1(joint)))  # [b, 2] logits

  def kernels(self) -> list[torch.Tensor]:
    return [m.weight for m in self.modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))]


def parameter_count(model: nn.Module) -> int:
  """Weights plus BN moving statistics, counted as Keras counts them."""
  buffers = sum(b.numel() for name, b in model.named_buffers()
                if not name.endswith("num_batches_tracked"))
  return sum(p.numel() for p in model.parameters()) + buffers


def make_training_step(widths: tuple[int, ...], batch: int,
                       bfloat16: bool = False, weight_decay: float = 1e-5,
                       learning_rate: float = 1e-4, seed: int = 0):
  """One forward + backward + Adam step of the peer, as a callable.

  Args:
    widths: the four block widths (after the width multiplier).
    batch: pairs per step (random inputs, half positives).
    bfloat16: run forward and backward under CPU autocast to bfloat16
      (weights and optimizer stay float32), PyTorch's mixed precision.
    weight_decay: L2 coefficient on every kernel, added to the loss.
    learning_rate: Adam's.
    seed: of the weights and the random inputs.

  Returns:
    (step, model): `step()` runs one step and returns the loss (a float).
  """
  torch.manual_seed(seed)
  model = AVCNetwork(tuple(widths)).to(memory_format=torch.channels_last)
  model.train()
  optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate, eps=1e-7)
  loss_fn = nn.CrossEntropyLoss()
  image = (torch.rand(batch, 3, 224, 224) * 2 - 1).contiguous(
      memory_format=torch.channels_last)
  spectrogram = torch.randn(batch, 1, 257, 199).contiguous(
      memory_format=torch.channels_last)
  labels = torch.arange(batch) % 2
  kernels = model.kernels()

  def step() -> float:
    optimizer.zero_grad(set_to_none=True)
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if bfloat16
                else contextlib.nullcontext())
    with autocast:
      logits = model(image, spectrogram)
      loss = loss_fn(logits.float(), labels)
    loss = loss + weight_decay * sum(torch.sum(k * k) for k in kernels)
    loss.backward()
    optimizer.step()
    return float(loss.detach())

  return step, model


def measure_training_step(widths: tuple[int, ...], batch: int, steps: int,
                          warmup: int = 2, **kwargs) -> dict:
  """Seconds per step (median of `steps` after `warmup`), this process alone.

  `kwargs` go to `make_training_step`.

  Returns:
    {"seconds_per_step", "pairs_per_second", "parameters", "threads"}.
  """
  step, model = make_training_step(widths, batch, **kwargs)
  for _ in range(warmup):
    step()
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
  seconds = float(np.median(times))
  return {"seconds_per_step": seconds, "pairs_per_second": batch / seconds,
          "parameters": parameter_count(model),
          "threads": torch.get_num_threads()}


def main():
  import argparse  # a stand-alone peer: no absl, no TensorFlow in this process
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--width_multiplier", type=float, default=1.0)
  parser.add_argument("--batch_size", type=int, default=16)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--bfloat16", action="store_true")
  args = parser.parse_args()
  widths = tuple(max(1, int(round(w * args.width_multiplier)))
                 for w in (64, 128, 256, 512))
  result = measure_training_step(widths, args.batch_size, args.steps,
                                 bfloat16=args.bfloat16)
  print(json.dumps({"torch": torch.__version__, "widths": widths,
                    "batch_size": args.batch_size, **result}))


if __name__ == "__main__":
  main()
