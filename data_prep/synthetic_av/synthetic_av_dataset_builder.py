"""synthetic_av: generated audio-visual videos, the embedded default dataset.

Nothing to download: `_split_generators` renders the videos
(`data_prep.synthetic_av.generate`) into the download dir as real H.264 + AAC
mp4 files, then decodes them with the same code as real videos
(`data_prep.video_builder`). The ground truth (labels, visibility intervals,
per-frame boxes) is copied next to the prepared dataset as
`ground_truth.json`.

  tfds build data_prep/synthetic_av --config=tiny --data_dir=/tmp/tfds
"""

import dataclasses
import hashlib
import json

from etils import epath
import tensorflow_datasets as tfds

from data_prep import video_builder
from data_prep.synthetic_av import generate
from l3_tf.data import video_example

_DESCRIPTION = """\
Generated videos for audio-visual correspondence (AVC). K object classes,
each with its own shape, colour and texture and its own sound (pitch, timbre,
rhythm), move over cluttered, noisy backgrounds; an object's sound plays
exactly while it is visible, over background noise at a random SNR; a video
may hold several objects. `label` is the class visible longest. Written as
H.264 + AAC mp4 with PyAV and decoded like real videos (4 fps JPEG frames,
48 kHz int16 mono audio). Deterministic for a seed.
"""


@dataclasses.dataclass(eq=False)
class SyntheticAvConfig(video_builder.VideoConfig):
  """Size, seed and difficulty of the generated dataset.

  The decoding fields of VideoConfig apply too (max_seconds defaults to None:
  whole videos). Generation fields mirror `generate.GeneratorParams`.
  """

  num_train: int = 240
  num_validation: int = 32
  num_test: int = 32
  seed: int = 0
  num_classes: int = 8
  seconds_per_video: float = 6.0
  objects_per_video: tuple[int, int] = (1, 2)
  snr_db_range: tuple[float, float] = (0.0, 10.0)
  clutter: int = 8
  visual_noise: float = 0.04
  gap_probability: float = 0.5
  max_seconds: float | None = None

  def __post_init__(self):
    super().__post_init__()
    self.objects_per_video = tuple(int(v) for v in self.objects_per_video)
    self.snr_db_range = tuple(float(v) for v in self.snr_db_range)
    for split, count in self.num_videos().items():
      if count < 0:
        raise ValueError(f"num_{split}={count}: expected >= 0")
    self.generator_params()  # validates the generation fields

  def num_videos(self) -> dict[str, int]:
    return {"train": self.num_train, "validation": self.num_validation,
            "test": self.num_test}

  def generator_params(self) -> generate.GeneratorParams:
    return generate.GeneratorParams(
        num_classes=self.num_classes, seconds=self.seconds_per_video,
        objects_per_video=self.objects_per_video,
        snr_db_range=self.snr_db_range, clutter=self.clutter,
        visual_noise=self.visual_noise, gap_probability=self.gap_probability)

  def fingerprint(self) -> str:
    """Identifies the generated videos (not the decoding options)."""
    spec = {"seed": self.seed, "num_videos": self.num_videos(),
            "params": self.generator_params().to_dict(),
            "generator_version": GENERATOR_VERSION}
    text = json.dumps(spec, sort_keys=True).encode("utf-8")
    return hashlib.sha256(text).hexdigest()[:16]


# Bump when generate.py changes what a (seed, params) pair renders.
GENERATOR_VERSION = 2  # 2: 8 fps (was 12)

TINY = SyntheticAvConfig(
    name="tiny",
    description="12 videos of 3 s (8/2/2), 4 classes: for tests (seconds).",
    num_train=8, num_validation=2, num_test=2, num_classes=4,
    seconds_per_video=3.0)
DEFAULT = SyntheticAvConfig(
    name="default",
    description="304 videos of 6 s (240/32/32), 8 classes (the CPU demo "
                "uses a smaller 4-class variant: experiments/configs/demo.py).")


class Builder(video_builder.VideoBuilder):
  """Generated AVC videos; see the module docstring."""

  BUILDER_CONFIGS = [DEFAULT, TINY]
  DEFAULT_BUILDER_CONFIG_NAME = "default"

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    names = [spec.name for spec in generate.class_specs(
        config.num_classes, config.generator_params().min_pitch_hz)]
    return self.dataset_info_from_configs(
        description=_DESCRIPTION,
        features=video_example.video_features(label_names=names),
        supervised_keys=None,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    config = self.builder_config
    videos_dir = (epath.Path(dl_manager.download_dir) / "synthetic_av" /
                  config.fingerprint())
    truth_path = videos_dir / generate.GROUND_TRUTH_FILE
    if truth_path.exists():
      truth = generate.read_ground_truth(truth_path)
    else:
      truth = generate.write_dataset(
          videos_dir, config.num_videos(), config.seed,
          config.generator_params(), num_workers=self._num_workers)
    (epath.Path(self.data_dir) / generate.GROUND_TRUTH_FILE).write_text(
        truth_path.read_text())
    items = {split: [] for split in config.num_videos()}
    for video_id, video in sorted(truth["videos"].items()):
      items[video["split"]].append(video_builder.MediaItem(
          key=video_id, path=str(videos_dir / video["path"]),
          source_path=video["path"], label=video["label"]))
    return self._media_splits(items)


def ground_truth(builder: tfds.core.DatasetBuilder) -> dict:
  """The ground truth of a prepared synthetic_av dataset (see generate)."""
  return generate.read_ground_truth(
      epath.Path(builder.data_dir) / generate.GROUND_TRUTH_FILE)
