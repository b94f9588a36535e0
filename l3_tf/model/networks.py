"""L3-Net (PAPER.md §2): a vision tower, an audio tower and a fusion head.

Keras 3 functional API. Each tower is a `keras.Model` whose outputs are a
dict of named taps, so callers select features by key, never by layer name:

  vision tower: [b, 224, 224, 3] -> {"embedding_512": [b, 512],
                                     "embedding_8192": [b, 8192],
                                     "conv4_2": [b, 28, 28, 512],
                                     "conv4_2_pre_relu": [b, 28, 28, 512]}
  audio tower:  [b, 257, 199, 1] -> {"embedding_512": [b, 512],
                                     "embedding_6144": [b, 6144],
                                     "conv4_2": [b, 32, 24, 512],
                                     "conv4_2_pre_relu": [b, 32, 24, 512]}

(shapes at width multiplier 1). The AVC network joins the two 512-d pool4
vectors: concat 1024 -> fc1 128 ReLU -> fc2 2 logits.

`ModelConfig.fusion = "distance"` swaps that head for AVE-Net's ("Objects
that Sound", Arandjelovic & Zisserman 2018; see `distance_head`): the same
towers, each 512-d vector projected to a shared, L2-normalised 128-d space,
and their Euclidean distance as the only input of the 2-way classifier.
"""

import dataclasses
import math

import keras

from l3_tf.data import audio_params as audio_params_lib
from l3_tf.data import image_ops
from l3_tf.model import fused_batch_norm

# Transfer taps (PAPER.md §5): conv4_2 max-pooled with equal kernel and stride
# until the dimension is below 10k. Audio 32x24 / (8, 8) -> 4x3x512 = 6144;
# vision 28x28 / (7, 7) -> 4x4x512 = 8192.
AUDIO_TAP_POOL = (8, 8)
VISION_TAP_POOL = (7, 7)
# `ModelConfig.batch_norm`: BN statistics per replica or over the global batch.
BATCH_NORM_MODES = ("per_replica", "synchronized")

# `ModelConfig.fusion`: L3's concatenation head, or AVE-Net's distance head.
FUSIONS = ("concat", "distance")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Architecture knobs of L3-Net.

  Attributes:
    block_widths: filters of the four conv blocks (both convs of a block).
    width_multiplier: scales every block width (tiny variants for tests and
      the CPU demo); 1.0 is the paper's network.
    fusion_units: width of fc1 of the fusion head.
    weight_decay: L2 penalty coefficient on every kernel (loss +=
      weight_decay * sum(w**2)), 1e-5 as in the paper's public peer.
    use_batch_norm: BN after every conv (the paper); False gives a BN-free
      variant whose convs carry a bias instead (used by distribution tests).
    batch_norm_momentum: moving-statistics momentum of BN. Evaluation uses
      the moving statistics, so short runs want a smaller momentum.
    batch_norm: where BN takes its batch statistics under a multi-replica
      strategy: "per_replica" (each replica normalises by its own 16 pairs)
      or "synchronized" (mean and variance all-reduced over the global
      batch: the statistics of one device holding the whole batch, at the
      cost of one all-reduce per BN layer and step). The default is
      "per_replica" because that is what the paper's implementation almost
      certainly had: it predates synchronized BN in TensorFlow (TF 1.x
      towers each ran their own `tf.layers.batch_normalization`; cross-replica
      BN arrived as `SyncBatchNormalization` in TF 2.2, 2020).
    kernel_initializer: initializer of every kernel.
    fused_batch_norm: BN on TensorFlow's fused kernel
      (`l3_tf.model.fused_batch_norm`; same variables and arithmetic, about 2x
      faster training at the demo width); False: Keras' generic BN.
    fusion: "concat" (L3: fc1 on the concatenated 512-d vectors) or
      "distance" (AVE-Net: both vectors projected to a shared, unit-norm
      `fusion_units`-d space; the logits come from their distance alone).
  """

  block_widths: tuple[int, int, int, int] = (64, 128, 256, 512)
  width_multiplier: float = 1.0
  fusion_units: int = 128
  weight_decay: float = 1e-5
  use_batch_norm: bool = True
  batch_norm_momentum: float = 0.99
  kernel_initializer: str = "he_normal"
  batch_norm: str = "per_replica"
  fused_batch_norm: bool = True
  fusion: str = "concat"

  def __post_init__(self):
    if self.batch_norm not in BATCH_NORM_MODES:
      raise ValueError(f"batch_norm={self.batch_norm!r}; expected one of "
                       f"{list(BATCH_NORM_MODES)}")
    if self.fusion not in FUSIONS:
      raise ValueError(f"fusion={self.fusion!r}; expected one of {FUSIONS}")
    if self.width_multiplier <= 0:
      raise ValueError(f"width_multiplier={self.width_multiplier} must be > 0")
    if len(self.block_widths) != 4:
      raise ValueError(f"block_widths={self.block_widths}: L3 has 4 blocks")

  @property
  def widths(self) -> tuple[int, ...]:
    """The block widths after the multiplier (at least 1 filter each)."""
    return tuple(max(1, int(round(w * self.width_multiplier)))
                 for w in self.block_widths)

  @property
  def is_narrowed(self) -> bool:
    return self.widths != (64, 128, 256, 512)


def _regularizer(config: ModelConfig):
  return keras.regularizers.L2(config.weight_decay) if config.weight_decay else None


def _conv_bn(x, filters: int, name: str, config: ModelConfig):
  """3x3 same conv -> BN; returns (pre-ReLU, post-ReLU)."""
  x = keras.layers.Conv2D(
      filters, 3, padding="same", use_bias=not config.use_batch_norm,
      kernel_initializer=config.kernel_initializer,
      kernel_regularizer=_regularizer(config), name=name)(x)
  if config.use_batch_norm:
    # The fused kernel is per replica: synchronized BN stays Keras' own.
    batch_norm = (fused_batch_norm.FusedBatchNormalization
                  if config.fused_batch_norm
                  and config.batch_norm != "synchronized"
                  else keras.layers.BatchNormalization)
    x = batch_norm(
        momentum=config.batch_norm_momentum,
        synchronized=config.batch_norm == "synchronized", name=f"{name}_bn")(x)
  return x, keras.layers.ReLU(name=f"{name}_relu")(x)


def _tower(inputs, config: ModelConfig, tap_pool: tuple[int, int],
           tap_from_pre_relu: bool, tap_name: str, name: str) -> keras.Model:
  """The VGG-style trunk shared by both modalities."""
  x = inputs
  for block, filters in enumerate(config.widths, start=1):
    pre_relu, x = _conv_bn(x, filters, f"conv{block}_1", config)
    pre_relu, x = _conv_bn(x, filters, f"conv{block}_2", config)
    if block < 4:
      x = keras.layers.MaxPooling2D(2, 2, name=f"pool{block}")(x)
  conv4_2, conv4_2_pre_relu = x, pre_relu
  embedding_512 = keras.layers.GlobalMaxPooling2D(name="pool4")(conv4_2)
  tap_source = conv4_2_pre_relu if tap_from_pre_relu else conv4_2
  tap = keras.layers.MaxPooling2D(tap_pool, tap_pool, name="tap_pool")(tap_source)
  tap = keras.layers.Flatten(name="tap_flatten")(tap)
  outputs = {
      "embedding_512": embedding_512,
      tap_name: tap,
      "conv4_2": conv4_2,
      "conv4_2_pre_relu": conv4_2_pre_relu,
  }
  return keras.Model(inputs, outputs, name=name)


def vision_tower(config: ModelConfig = ModelConfig(),
                 image_params: image_ops.ImageParams = image_ops.DEFAULT,
                 any_size: bool = False) -> keras.Model:
  """[b, 224, 224, 3] in [-1, 1] -> dict of taps (see module docstring).

  The 8192-d tap is conv4_2 *after* ReLU (PAPER.md §5, ImageNet probe).
  With `any_size`, the input is [b, h, w, 3] for any h, w >= 8: the same
  layers (and weights, via `set_weights`) run fully convolutionally, e.g.
  to localise over a whole frame rather than its central crop.
  """
  size = None if any_size else image_params.crop_size
  inputs = keras.Input((size, size, 3), name="image")
  return _tower(inputs, config, VISION_TAP_POOL, tap_from_pre_relu=False,
                tap_name="embedding_8192", name="vision_tower")


def audio_tower(config: ModelConfig = ModelConfig(),
                audio_params: audio_params_lib.AudioParams = audio_params_lib.DEFAULT
                ) -> keras.Model:
  """[b, 257, 199, 1] log-spectrogram -> dict of taps.

  The 6144-d tap is conv4_2 *before* ReLU (PAPER.md §5, sound classification).
  """
  inputs = keras.Input(audio_params.spectrogram_shape, name="spectrogram")
  return _tower(inputs, config, AUDIO_TAP_POOL, tap_from_pre_relu=True,
                tap_name="embedding_6144", name="audio_tower")


def fusion_head(config: ModelConfig = ModelConfig()) -> keras.Model:
  """([b, 512], [b, 512]) -> [b, 2] logits (index 1 = "corresponds").

  With `config.fusion == "distance"` this is AVE-Net's `distance_head`.
  """
  if config.fusion == "distance":
    return distance_head(config)
  width = config.widths[-1]
  vision = keras.Input((width,), name="vision_embedding")
  audio = keras.Input((width,), name="audio_embedding")
  x = keras.layers.Concatenate(name="concat")([vision, audio])  # [b, 1024]
  x = keras.layers.Dense(
      config.fusion_units, activation="relu",
      kernel_initializer=config.kernel_initializer,
      kernel_regularizer=_regularizer(config), name="fc1")(x)  # [b, 128]
  logits = keras.layers.Dense(
      2, kernel_regularizer=_regularizer(config), dtype="float32",
      name="fc2")(x)  # [b, 2]
  return keras.Model([vision, audio], logits, name="fusion_head")


def avc_network(config: ModelConfig = ModelConfig(),
                image_params: image_ops.ImageParams = image_ops.DEFAULT,
                audio_params: audio_params_lib.AudioParams = audio_params_lib.DEFAULT
                ) -> keras.Model:
  """The audio-visual correspondence network.

  Returns:
    A model `{"image": [b, 224, 224, 3], "spectrogram": [b, 257, 199, 1]}`
    -> `[b, 2]` float32 logits; softmax index 1 is P(corresponds). Its towers
    and head are reachable as `model.get_layer("vision_tower")`,
    `"audio_tower"` and `"fusion_head"` (see `towers_of`).
  """
  vision = vision_tower(config, image_params)
  audio = audio_tower(config, audio_params)
  head = fusion_head(config)
  image = keras.Input(vision.input.shape[1:], name="image")
  spectrogram = keras.Input(audio.input.shape[1:], name="spectrogram")
  logits = head([vision(image)["embedding_512"],
                 audio(spectrogram)["embedding_512"]])
  return keras.Model({"image": image, "spectrogram": spectrogram}, logits,
                     name="l3_avc")


def towers_of(avc: keras.Model) -> tuple[keras.Model, keras.Model, keras.Model]:
  """(vision_tower, audio_tower, fusion_head) of an `avc_network` model."""
  return (avc.get_layer("vision_tower"), avc.get_layer("audio_tower"),
          avc.get_layer("fusion_head"))


# AVE-Net ("Objects that Sound", Arandjelovic & Zisserman, ECCV 2018, §3.1).
VISION_PROJECTION = "vision_projection"
AUDIO_PROJECTION = "audio_projection"


class PairDistance(keras.layers.Layer):
  """Euclidean distance of two batches of vectors: ([b, d], [b, d]) -> [b, 1].

  Computed in float32 whatever the policy; sqrt(max(s, 1e-12)) keeps the
  gradient finite when the two vectors coincide.
  """

  def __init__(self, **kwargs):
    kwargs.setdefault("dtype", "float32")
    super().__init__(**kwargs)

  def call(self, inputs):
    a, b = inputs
    squared = keras.ops.sum(keras.ops.square(a - b), axis=-1, keepdims=True)
    return keras.ops.sqrt(keras.ops.maximum(squared, 1e-12))  # [b, 1]


def projection(config: ModelConfig, name: str) -> keras.Model:
  """One modality's map into the shared space: [b, W4] -> [b, 128], unit norm.

  fc1 (W4 -> fusion_units, ReLU) -> fc2 (-> fusion_units) -> L2 normalisation.
  """
  inputs = keras.Input((config.widths[-1],), name=f"{name}_input")
  x = keras.layers.Dense(
      config.fusion_units, activation="relu",
      kernel_initializer=config.kernel_initializer,
      kernel_regularizer=_regularizer(config), name="fc1")(inputs)  # [b, 128]
  x = keras.layers.Dense(
      config.fusion_units, kernel_regularizer=_regularizer(config),
      name="fc2")(x)  # [b, 128]
  x = keras.layers.UnitNormalization(axis=-1, dtype="float32",
                                     name="l2_normalize")(x)  # [b, 128]
  return keras.Model(inputs, x, name=name)


def distance_head(config: ModelConfig = ModelConfig()) -> keras.Model:
  """AVE-Net's head: ([b, W4], [b, W4]) -> [b, 2] logits (1 = "corresponds").

  Each 512-d vector goes through its own `projection` (sub-models named
  `VISION_PROJECTION` and `AUDIO_PROJECTION`) into a shared, unit-norm
  space; the Euclidean distance d in [0, 2] of the two is the only input of
  fc3 (1 -> 2). fc3 starts at logits (d - sqrt 2, sqrt 2 - d), i.e.
  P(corresponds) = sigmoid(2 (sqrt 2 - d)): the distance of two random unit
  vectors in 128-d is about sqrt 2, so training starts undecided and closer
  pairs already lean towards "corresponds". (The paper does not give fc3's
  initialisation; this is our choice.)
  """
  width = config.widths[-1]
  vision = keras.Input((width,), name="vision_embedding")
  audio = keras.Input((width,), name="audio_embedding")
  vision_shared = projection(config, VISION_PROJECTION)(vision)  # [b, 128]
  audio_shared = projection(config, AUDIO_PROJECTION)(audio)  # [b, 128]
  distance = PairDistance(name="distance")([vision_shared, audio_shared])  # [b, 1]
  logits = keras.layers.Dense(
      2, kernel_initializer=keras.initializers.Constant([[1.0, -1.0]]),
      bias_initializer=keras.initializers.Constant(
          [-math.sqrt(2.0), math.sqrt(2.0)]),
      kernel_regularizer=_regularizer(config), dtype="float32",
      name="fc3")(distance)  # [b, 2]
  return keras.Model([vision, audio], logits, name="fusion_head")


def has_shared_space(avc: keras.Model) -> bool:
  """Whether an `avc_network` is an AVE-Net (its head has projections)."""
  head = avc.get_layer("fusion_head")
  return any(layer.name == VISION_PROJECTION for layer in head.layers)


def projections_of(avc: keras.Model) -> tuple[keras.Model, keras.Model]:
  """(vision_projection, audio_projection) of an AVE-Net `avc_network`:
  [b, W4] -> [b, 128] unit-norm maps into the shared space.

  Raises:
    ValueError: `avc` is an L3 network (fusion "concat"): its towers live in
      two different spaces.
  """
  if not has_shared_space(avc):
    raise ValueError(
        f"model {avc.name!r} has a concatenation fusion head (L3, "
        "model.fusion='concat'): it has no shared audio-image space; train "
        "with model.fusion='distance' (AVE-Net) for one")
  head = avc.get_layer("fusion_head")
  return head.get_layer(VISION_PROJECTION), head.get_layer(AUDIO_PROJECTION)
