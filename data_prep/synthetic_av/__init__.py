"""synthetic_av: the generated audio-visual dataset (no download).

One call generates the mp4 files and prepares the TFDS dataset:

  builder = data_prep.synthetic_av.build("/tmp/tfds", config="tiny")
  train = builder.as_dataset(split="train",
                             decoders=video_example.SKIP_FRAME_DECODING)
  truth = data_prep.synthetic_av.ground_truth(builder)

The builder module is imported lazily so that `tfds build
data_prep/synthetic_av` (which imports it by path) never registers it twice.
"""

import dataclasses
import hashlib
import json
import os


def _custom_config(base, overrides: dict):
  """A config derived from `base`, named by a hash of its content."""
  config = dataclasses.replace(base, name=base.name, **overrides)
  content = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
             if f.name not in ("name", "description", "release_notes",
                               "supported_versions", "tags", "version")}
  digest = hashlib.sha256(json.dumps(content, sort_keys=True,
                                     default=str).encode()).hexdigest()[:10]
  return dataclasses.replace(
      config, name=f"{base.name}_custom_{digest}",
      description=f"{base.name} with {json.dumps(overrides, sort_keys=True)}")


def build(data_dir: str | os.PathLike, config="tiny", *,
          download_dir: str | os.PathLike | None = None, num_workers: int = 2,
          **overrides):
  """Generates the videos and prepares the dataset; returns the builder.

  Idempotent: an already prepared dataset (same config) is reused, and the
  generated mp4 files are kept (in download_dir) and reused too.

  Args:
    data_dir: TFDS data dir to prepare the dataset in.
    config: "tiny" (12 videos of 3 s, 4 classes: seconds), "default" (304
      videos of 6 s, 8 classes: the demo, a few minutes on 2 cores) or a
      `SyntheticAvConfig`.
    download_dir: where the mp4 files go (default `<data_dir>/downloads`).
    num_workers: processes rendering and decoding videos in parallel.
    **overrides: `SyntheticAvConfig` fields to change, e.g. num_train=64,
      seconds_per_video=4.0, num_classes=4, snr_db_range=(5, 15), seed=1.
      The config then gets a content-derived name.

  Returns:
    The prepared `tfds.core.DatasetBuilder`.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from data_prep.synthetic_av import synthetic_av_dataset_builder as lib  # pylint: disable=g-import-not-at-top

  if isinstance(config, str):
    configs = {c.name: c for c in lib.Builder.BUILDER_CONFIGS}
    if config not in configs:
      raise ValueError(f"config={config!r}: expected one of {sorted(configs)} "
                       "or a SyntheticAvConfig")
    config = configs[config]
  if overrides:
    config = _custom_config(config, overrides)
  builder = lib.Builder(data_dir=os.fspath(data_dir), config=config,
                        num_workers=num_workers)
  download_dir = (os.fspath(download_dir) if download_dir is not None else
                  os.path.join(os.fspath(data_dir), "downloads"))
  builder.download_and_prepare(
      download_dir=download_dir,
      download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  return builder


def ground_truth(builder) -> dict:
  """Ground truth of a prepared dataset; see `generate.read_ground_truth`."""
  from data_prep.synthetic_av import synthetic_av_dataset_builder as lib  # pylint: disable=g-import-not-at-top
  return lib.ground_truth(builder)
