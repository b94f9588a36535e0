"""Which vision and audio units respond to what: ranking and the unit figures.

Part of `l3_tf.analysis.visualize` (PAPER.md §5): units are ranked per
*video* (a video's best frame), so that near-duplicate frames of one video
never fill a unit's top-k; each shown unit gets its top-k frames or
spectrograms, with its conv4_2 map overlaid.
"""

import os
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from l3_tf.analysis import localize
from l3_tf.analysis import overlays
from l3_tf.analysis import units as units_lib
from l3_tf.data import audio_frontend
from l3_tf.data import frame_sound_examples as examples_lib
from l3_tf.data import image_ops
from l3_tf.model import networks as model_lib


# ------------------------------------------------------------ unit ranking


def video_level(activations: np.ndarray, examples: examples_lib.Examples,
                labelled_only: bool = False
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Per-video unit activations (each video's best example).

  Returns:
    (`[videos, units]` activations, `[videos, units]` example index of each
    maximum, `[videos]` labels), videos in reading order; with
    `labelled_only`, videos without a label are left out.
  """
  keep = (examples.labels >= 0) if labelled_only else np.ones(len(examples), bool)
  rows = np.flatnonzero(keep)
  best, index = units_lib.best_per_group(activations[rows],
                                         examples.video_ids[rows])
  index = rows[index]  # [videos, units] indices into all examples
  return best, index, examples.labels[index[:, 0]]


def _contrast(video_activations: np.ndarray, k: int) -> np.ndarray:
  """How far each unit's top-k videos stand out: (mean top-k - mean) / std."""
  top = -np.sort(-video_activations, axis=0)[:k]  # [k, units]
  spread = video_activations.std(axis=0)
  return np.where(spread > 0, (top.mean(axis=0) - video_activations.mean(axis=0))
                  / np.maximum(spread, 1e-12), 0.0)


def rank_units(video_activations: np.ndarray, labels: np.ndarray | None,
               k: int, threshold: float = 1.0) -> list[int]:
  """Units, most interesting first.

  With labels: the selective units (purity of the top-k videos >= threshold)
  first, taken round-robin over their majority labels (the best unit of
  every label, then the second best of every label...) so that a few units
  show many classes; then the others; each by purity, then contrast.
  Without labels: by contrast (`_contrast`). Dead units (constant over the
  videos) come last.
  """
  k = min(k, video_activations.shape[0])
  contrast = _contrast(video_activations, k)
  dead = units_lib.dead_units(video_activations)
  if labels is None:
    return [int(u) for u in np.lexsort((-contrast, dead))]
  unit_purity, majority = units_lib.purity(
      units_lib.top_k_examples(video_activations, k), labels)
  # lexsort: the last key is the primary one.
  order = np.lexsort((-contrast, -unit_purity, dead))
  selective = ~dead & (unit_purity >= threshold)
  seen: dict[int, int] = {}
  turn = np.zeros(len(order), np.int64)  # units of its label ranked before it
  for position, unit in enumerate(order):
    if selective[unit]:
      turn[position] = seen.get(int(majority[unit]), 0)
      seen[int(majority[unit])] = turn[position] + 1
  round_robin = order[np.lexsort((np.arange(len(order)), turn,
                                  ~selective[order], dead[order]))]
  return [int(u) for u in round_robin]


def check_units(units: Sequence[int], count: int, modality: str) -> list[int]:
  bad = [u for u in units if not 0 <= u < count]
  if bad:
    raise ValueError(f"{modality} units {bad} do not exist: the {modality} "
                     f"tower's conv4_2 has {count} channels (0..{count - 1})")
  return [int(u) for u in units]


# ------------------------------------------------------------ unit maps


def vision_inputs(examples: examples_lib.Examples, indices: Sequence[int],
                  config) -> tf.Tensor:
  """`[n, crop, crop, 3]` in [-1, 1]: the central crops the tower saw."""
  return tf.stack([image_ops.preprocess_for_eval(
      tf.io.decode_jpeg(examples.frames[i], channels=3), config.image)
                   for i in indices])


def audio_inputs(examples: examples_lib.Examples, indices: Sequence[int],
                 config) -> tf.Tensor:
  """`[n, bins, frames, 1]` log-spectrograms of the sound windows."""
  waveforms = np.stack([examples.waveform(i) for i in indices])
  return audio_frontend.log_spectrogram(tf.constant(waveforms), config.audio)


def unit_maps(tower: keras.Model, inputs: tf.Tensor, unit: int) -> np.ndarray:
  """`[n, h, w]` the unit's conv4_2 (after ReLU) map on each input."""
  return tower(inputs, training=False)["conv4_2"][..., unit].numpy()


def _caption(examples: examples_lib.Examples, i: int, rank: int, score: float) -> str:
  name = examples.label_name(i)
  video = os.path.basename(str(examples.video_ids[i]))
  if len(video) > 24:
    video = video[:10] + "..." + video[-11:]
  text = f"#{rank + 1} {score:.3g} @{examples.frame_times[i]:.2f}s\n{video}"
  return f"{text}\n{name}" if name is not None else text


def _unit_title(modality: str, unit: int, info: dict) -> str:
  title = f"{modality} unit {unit}"
  if info.get("purity") is not None:
    title += (f"  purity {info['purity']:.2f} (top {info['purity_k']}, "
              f"majority {info['majority_label']})")
  return title


def _vision_unit_files(tower, config, examples: examples_lib.Examples, top: list[int],
                       unit: int, captions: list[str], title: str,
                       stem: str) -> list[str]:
  """Top frames (central crops) of a vision unit, bare and with its map."""
  crops = vision_inputs(examples, top, config)
  maps = unit_maps(tower, crops, unit)  # [k, h4, w4]
  images = (crops.numpy() + 1.0) / 2.0  # [k, crop, crop, 3] in [0, 1]
  heats = [localize.upsample_grid(m, *images.shape[1:3]) for m in maps]
  high = max(float(np.max(maps)), 1e-6)
  return [
      overlays.save_grid(
          [(lambda ax, im=im: overlays.draw_image_overlay(ax, im, None), c)
           for im, c in zip(images, captions)], f"{stem}_frames.png", title),
      overlays.save_grid(
          [(lambda ax, im=im, h=h: overlays.draw_image_overlay(
              ax, im, h, vmin=0.0, vmax=high), c)
           for im, h, c in zip(images, heats, captions)],
          f"{stem}_heatmaps.png",
          f"{title}\nconv4_2 map, colour 0..{high:.3g} (shared)")]


def _audio_unit_files(tower, config, examples: examples_lib.Examples, top: list[int],
                      unit: int, captions: list[str], title: str,
                      stem: str) -> list[str]:
  """Frames of an audio unit's top clips, and their spectrograms with its
  map."""
  spectrograms = audio_inputs(examples, top, config)
  maps = unit_maps(tower, spectrograms, unit)  # [k, h4, w4]
  high = max(float(np.max(maps)), 1e-6)
  frames = [examples.frame(i) / 255.0 for i in top]
  return [
      overlays.save_grid(
          [(lambda ax, im=im: overlays.draw_image_overlay(ax, im, None), c)
           for im, c in zip(frames, captions)], f"{stem}_frames.png",
          f"{title}\nframes of the clips whose sound activates it most"),
      overlays.save_grid(
          [(lambda ax, s=s, m=m: overlays.draw_spectrogram_overlay(
              ax, s, m, config.audio, vmin=0.0, vmax=high), c)
           for s, m, c in zip(spectrograms.numpy(), maps, captions)],
          f"{stem}_spectrograms.png",
          f"{title}\nconv4_2 map, colour 0..{high:.3g} (shared)",
          panel_inches=(2.8, 2.4))]


def unit_figures(avc: keras.Model, config, examples: examples_lib.Examples,
                 activations: dict[str, np.ndarray], output_dir: str,
                 options) -> dict[str, list[dict]]:
  """The unit grids of both towers; returns what was shown, per modality.

  `options` is a `visualize.Options` (units asked for, top_k, purity).
  """
  vision_tower, audio_tower, _ = model_lib.towers_of(avc)
  draw = {units_lib.VISION: lambda *a: _vision_unit_files(vision_tower, config, *a),
          units_lib.AUDIO: lambda *a: _audio_unit_files(audio_tower, config, *a)}
  requested = {units_lib.VISION: options.vision_units, units_lib.AUDIO: options.audio_units}
  labelled = bool(np.any(examples.labels >= 0))
  shown = {}
  for modality in units_lib.MODALITIES:
    per_video, best_example, _ = video_level(activations[modality], examples)
    labelled_acts, _, labels = video_level(activations[modality], examples,
                                           labelled_only=True)
    if requested[modality]:
      chosen = check_units(requested[modality], per_video.shape[1], modality)
    else:
      use_labels = labelled and len(set(labels.tolist())) > 1
      order = rank_units(labelled_acts if use_labels else per_video,
                         labels if use_labels else None, options.purity_k,
                         options.purity_threshold)
      chosen = order[:options.num_units]
    if chosen:
      os.makedirs(os.path.join(output_dir, f"{modality}_units"), exist_ok=True)
    k = min(options.top_k, per_video.shape[0])
    purity_k = min(options.purity_k, labelled_acts.shape[0])
    shown[modality] = []
    for unit in chosen:
      top_videos = units_lib.top_k_examples(per_video[:, [unit]], k)[0]
      top = [int(best_example[v, unit]) for v in top_videos]  # example ids
      scores = [float(activations[modality][i, unit]) for i in top]
      info = {"unit": unit, "purity": None, "majority_label": None,
              "purity_k": purity_k,
              "top": [{"video_id": str(examples.video_ids[i]),
                       "frame_time": float(examples.frame_times[i]),
                       "label": examples.label_name(i), "activation": s}
                      for i, s in zip(top, scores)]}
      if purity_k > 0:
        unit_purity, majority = units_lib.purity(units_lib.top_k_examples(
            labelled_acts[:, [unit]], purity_k), labels)
        info["purity"] = float(unit_purity[0])
        info["majority_label"] = (examples.label_names[majority[0]]
                                  if examples.label_names else int(majority[0]))
      captions = [_caption(examples, i, rank, s)
                  for rank, (i, s) in enumerate(zip(top, scores))]
      stem = os.path.join(output_dir, f"{modality}_units", f"unit_{unit:03d}")
      files = draw[modality](examples, top, unit, captions,
                             _unit_title(modality, unit, info), stem)
      info["files"] = [os.path.relpath(f, output_dir) for f in files]
      shown[modality].append(info)
  return shown
