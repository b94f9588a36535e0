"""The experiment configuration: frozen dataclasses, JSON round trip, overrides.

`experiments/configs/*.py` build these in code (`get_config()`); binaries
apply command-line overrides (`--set train.learning_rate=3e-4`) through
`override`, and the training loop writes the resolved config as JSON.
"""

import dataclasses
import json
import types
import typing
from typing import Any

from l3_tf.data import audio_params as audio_params_lib
from l3_tf.data import image_ops
from l3_tf.model import networks as model_lib


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where the videos come from and how pairs are drawn.

  Attributes:
    dataset: TFDS builder name (for example "synthetic_av", "video_folder").
    data_dir: TFDS data dir holding the prepared dataset (None: TFDS default).
    train_split: split the AVC task is trained on.
    eval_split: split used for the periodic and final AVC evaluation.
    shuffle_videos: shuffle buffer, in videos, before pairs are drawn.
    group_videos: videos drawn together (>= 3); a negative pairs a frame with
      the audio of another video of its group (see `l3_tf.data.pairs`).
    pairs_per_video: positives (and as many negatives) drawn from each video
      each time it is read; 1 draws every pair from a fresh video visit,
      larger values read less data per pair.
    eval_num_pairs: size of the fixed, balanced evaluation set (even).
    eval_seed: seed of the evaluation set (same set for the same seed).
    eval_batch_size: pairs per evaluation batch (does not change results).
    on_bad_record: a training record that cannot be read: "fail" (stop,
      naming the shard and record, after a checkpoint) or "skip" (leave it
      out, count it in <workdir>/skipped_records.tsv and TensorBoard); see
      `l3_tf.data.bad_records`. Evaluation always fails.
    service_address: a tf.data service dispatcher ("grpc://host:port", see
      `l3_tf.data.data_service` and experiments/data_service.py). When set, the
      training pipeline runs on the service's workers (other machines'
      CPUs) and the trainer reads finished batches from them; each service
      worker draws pairs with its own seed. None: the pipeline runs here.
  """

  dataset: str = "flickr_soundnet"
  data_dir: str | None = None
  train_split: str = "train"
  eval_split: str = "validation"
  shuffle_videos: int = 1024
  group_videos: int = 8
  pairs_per_video: int = 1
  eval_num_pairs: int = 10000
  eval_seed: int = 0
  eval_batch_size: int = 64
  on_bad_record: str = "fail"
  service_address: str | None = None


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Optimisation and bookkeeping of AVC training.

  Attributes:
    batch_size_per_replica: pairs per replica per step (16 in the paper);
      even, so that every batch holds as many positives as negatives.
    global_batch_size: if > 0, the batch of one step over all replicas,
      which must divide evenly among them (then batch_size_per_replica is
      ignored); 0 means batch_size_per_replica x replicas.
    learning_rate: Adam learning rate (1e-4 in the paper; the weight decay
      is `model.weight_decay`); the peak of the schedule below.
    warmup_steps: the learning rate rises linearly from 0 to
      `learning_rate` over the first this many steps (0: no warm-up).
    learning_rate_decay: after the warm-up, "constant" (the paper) or
      "cosine" (half a cosine from `learning_rate` down to
      `final_learning_rate_fraction` x it at `num_steps`).
    final_learning_rate_fraction: "cosine" only: the learning rate at
      `num_steps`, as a fraction of `learning_rate`.
    num_steps: total optimisation steps.
    audio_gain_max: audio augmentation, gain uniform in 1 +- this (0.1).
    mixed_precision: deprecated, replaced by `precision`; true reads as
      precision="bfloat16" (kept so that older config.json files load).
    precision: "float32", "bfloat16" (bfloat16 compute, float32 variables)
      or "float16" (float16 compute with dynamic loss scaling); see
      `l3_tf.model.precision` for which to use on which hardware.
    loss_scale_initial: float16 only: the initial loss scale.
    loss_scale_growth_steps: float16 only: the loss scale doubles after this
      many consecutive steps with finite gradients (it halves, and the step
      is skipped, on any overflow).
    checkpoint_every_steps: checkpoint period (and always on exit).
    keep_checkpoints: how many recent checkpoints to keep.
    log_every_steps: scalar summary period.
    summary_images_every_steps: period of the input-pair image summaries
      (0: never).
    summary_images: pairs shown per image summary.
    eval_every_steps: in-training evaluation period (0: only at the end).
    seed: seed of initialisation and of the data pipeline.
    devices: devices to mirror over on one machine ("/gpu:0,/gpu:1");
      empty: all visible GPUs, or the default device when there are none.
      Ignored when TF_CONFIG asks for several workers.
    max_bad_steps: consecutive steps with a non-finite loss or gradient
      (each skipped, not applied) after which training stops with an error.
    cpu_replicas: if > 0, split this machine's CPU into that many logical
      devices and mirror over them (also on each worker of a TF_CONFIG
      cluster): rehearses an N-accelerator run on CPUs (tests). 0: off.
    jit_compile: compile each replica's forward and backward pass with
      XLA. Off by default: on this machine's CPU (AMD EPYC, 2 cores) the
      compiled step ran at 0.44x the speed of the uncompiled one (batch 16,
      width 1/4; the full-width XLA compile was OOM-killed beside other
      jobs; WORKSPACE.md, "What it would cost"). On GPUs XLA fuses BN /
      ReLU / pooling around the convs and is usually worth turning on
      (`--set train.jit_compile=true`); measure it there. A compiled run
      first checks XLA's step against the uncompiled one on its first
      batch and refuses to train (exit 1) when they differ beyond float
      round-off (`compiled_check.check_compiled_step`: TF 2.16's XLA computed NaN
      gradients on an AVX2-only AMD EPYC, issue 22).
    steps_per_loop: steps run inside one `tf.function` call (a `tf.range`
      loop over the distributed iterator), so that the host does not stall
      the accelerators between steps. Logging, checkpoints, evaluation,
      image summaries and SIGTERM are handled at loop boundaries (a loop
      never runs past one of their periods), so resuming is exact there.
  """

  batch_size_per_replica: int = 16
  global_batch_size: int = 0
  learning_rate: float = 1e-4
  warmup_steps: int = 0
  learning_rate_decay: str = "constant"
  final_learning_rate_fraction: float = 0.0
  num_steps: int = 240000
  audio_gain_max: float = 0.1
  mixed_precision: bool = False
  precision: str = "float32"
  loss_scale_initial: float = 2.0**15
  loss_scale_growth_steps: int = 2000
  checkpoint_every_steps: int = 1000
  keep_checkpoints: int = 3
  log_every_steps: int = 100
  summary_images_every_steps: int = 1000
  summary_images: int = 4
  eval_every_steps: int = 0
  seed: int = 0
  devices: tuple[str, ...] = ()
  max_bad_steps: int = 10
  cpu_replicas: int = 0
  jit_compile: bool = False
  steps_per_loop: int = 1


@dataclasses.dataclass(frozen=True)
class Config:
  """Everything that defines one experiment."""

  name: str = "paper"
  model: model_lib.ModelConfig = model_lib.ModelConfig()
  image: image_ops.ImageParams = image_ops.DEFAULT
  audio: audio_params_lib.AudioParams = audio_params_lib.DEFAULT
  data: DataConfig = DataConfig()
  train: TrainConfig = TrainConfig()


def to_dict(config) -> dict[str, Any]:
  """A JSON-ready nested dict (tuples become lists)."""
  return json.loads(json.dumps(dataclasses.asdict(config)))


def to_json(config) -> str:
  return json.dumps(to_dict(config), indent=2, sort_keys=True)


def _field_types(cls) -> dict[str, Any]:
  return typing.get_type_hints(cls)


def _coerce(value: Any, hint: Any, where: str) -> Any:
  """Converts a JSON value or a command-line string to the field's type."""
  origin = typing.get_origin(hint)
  args = typing.get_args(hint)
  if origin in (typing.Union, types.UnionType):
    if value is None or (isinstance(value, str) and value.lower() == "none"):
      if type(None) in args:
        return None
    errors = []
    for arg in args:
      if arg is type(None):
        continue
      try:
        return _coerce(value, arg, where)
      except ValueError as e:
        errors.append(str(e))
    raise ValueError(f"{where}: cannot read {value!r} as {hint}")
  if dataclasses.is_dataclass(hint):
    if isinstance(value, hint):
      return value
    if not isinstance(value, dict):
      raise ValueError(f"{where}: expected a mapping for {hint.__name__}, "
                       f"got {value!r}")
    return from_dict(hint, value, where)
  if origin is tuple:
    if isinstance(value, str):
      if value.startswith("["):
        value = json.loads(value)
      elif args and args[0] is str:  # a comma list: "/gpu:0,/gpu:1"
        value = [v.strip() for v in value.split(",") if v.strip()]
      else:
        value = json.loads(f"[{value}]")
    if args and args[-1] is Ellipsis:
      return tuple(_coerce(v, args[0], where) for v in value)
    if len(value) != len(args):
      raise ValueError(f"{where}: expected {len(args)} values, got {value!r}")
    return tuple(_coerce(v, a, where) for v, a in zip(value, args))
  if hint is bool:
    if isinstance(value, bool):
      return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes"):
      return True
    if isinstance(value, str) and value.lower() in ("false", "0", "no"):
      return False
    raise ValueError(f"{where}: expected true or false, got {value!r}")
  if hint in (int, float, str):
    try:
      coerced = hint(value)
    except (TypeError, ValueError):
      raise ValueError(f"{where}: expected {hint.__name__}, got {value!r}") from None
    if hint is int and isinstance(value, float) and value != coerced:
      raise ValueError(f"{where}: expected an integer, got {value!r}")
    return coerced
  return value


def from_dict(cls, values: dict[str, Any], where: str = "config"):
  """Builds dataclass `cls` from a nested dict, checking every key."""
  hints = _field_types(cls)
  unknown = sorted(set(values) - set(hints))
  if unknown:
    raise ValueError(f"{where}: unknown field(s) {unknown}; "
                     f"{cls.__name__} has {sorted(hints)}")
  kwargs = {name: _coerce(value, hints[name], f"{where}.{name}")
            for name, value in values.items()}
  return cls(**kwargs)


def override(config, assignment: str):
  """Returns `config` with one dotted field replaced: "train.num_steps=100"."""
  if "=" not in assignment:
    raise ValueError(f"override {assignment!r} must look like section.field=value")
  path, raw = assignment.split("=", 1)
  keys = path.strip().split(".")

  def replace(node, keys, where):
    hints = _field_types(type(node))
    key = keys[0]
    if key not in hints:
      raise ValueError(f"override {assignment!r}: {where} has no field {key!r}; "
                       f"fields are {sorted(hints)}")
    if len(keys) == 1:
      value = raw
      hint = hints[key]
      if dataclasses.is_dataclass(hint):
        value = json.loads(raw)
      return dataclasses.replace(
          node, **{key: _coerce(value, hint, f"{where}.{key}")})
    child = getattr(node, key)
    if not dataclasses.is_dataclass(child):
      raise ValueError(f"override {assignment!r}: {where}.{key} is not a section")
    return dataclasses.replace(
        node, **{key: replace(child, keys[1:], f"{where}.{key}")})

  return replace(config, keys, "config")


def apply_overrides(config, assignments: list[str] | None):
  for assignment in assignments or ():
    config = override(config, assignment)
  return config
