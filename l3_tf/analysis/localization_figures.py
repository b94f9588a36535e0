"""Where the sound comes from, measured and drawn (PAPER.md §5, Figure 5).

Part of `l3_tf.analysis.visualize`: the localisation hit rate and box
contrast against the sounding objects' boxes (when known), the sound
dependence of the heatmaps, and the localisation figures.
"""

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from l3_tf.analysis import localize
from l3_tf.analysis import overlays
from l3_tf.data import frame_sound_examples as examples_lib


# (video_id, frame time in s) -> boxes [x0, y0, x1, y1] as fractions of the
# frame, of the objects that sound at that time.
BoxesFn = Callable[[str, float], Sequence[Sequence[float]]]



def inside(point: tuple[float, float], box: Sequence[float]) -> bool:
  """Whether (x, y) lies in the box [x0, y0, x1, y1) (fractions)."""
  x, y = point
  return box[0] <= x < box[2] and box[1] <= y < box[3]


def _in_boxes(xs: np.ndarray, ys: np.ndarray,
              boxes: Sequence[Sequence[float]]) -> np.ndarray:
  """`[len(ys), len(xs)]` whether each point (x, y) lies in a box (`inside`)."""
  covered = np.zeros((len(ys), len(xs)), bool)
  for x0, y0, x1, y1 in boxes:
    covered |= (((ys >= y0) & (ys < y1))[:, None]
                & ((xs >= x0) & (xs < x1))[None, :])
  return covered


def box_union_fraction(boxes: Sequence[Sequence[float]],
                       resolution: int = 512) -> float:
  """Share of the frame covered by the union of boxes (fractions), i.e. the
  chance that a uniformly random location falls in one of them."""
  if not boxes:
    return 0.0
  centres = (np.arange(resolution) + 0.5) / resolution
  return float(_in_boxes(centres, centres, boxes).mean())


def localization_hit_rate(localizer: localize.Localizer, examples: examples_lib.Examples,
                          boxes_of: BoxesFn, max_frames: int | None = None
                          ) -> dict[str, Any]:
  """How often the heatmap's peak falls on a sounding object.

  For every example whose frame shows at least one sounding object (per
  `boxes_of`), the heatmap of (frame, its own sound) is computed; a hit is
  a peak (`localize.peak_position`) inside one of the boxes. The random-location
  baseline is the mean share of the frame the boxes cover.

  Returns:
    {"hit_rate", "random_baseline", "ratio", "num_frames",
     "num_without_object"}.
  """
  hits, areas, without = [], [], 0
  for i in range(len(examples)):
    if max_frames is not None and len(hits) >= max_frames:
      break
    boxes = [list(b) for b in boxes_of(str(examples.video_ids[i]),
                                       float(examples.frame_times[i]))]
    if not boxes:
      without += 1
      continue
    heatmap = localizer(examples.frame(i), examples.waveform(i))
    peak = localize.peak_position(heatmap)
    hits.append(any(inside(peak, box) for box in boxes))
    areas.append(box_union_fraction(boxes))
  if not hits:
    raise ValueError("no example shows a sounding object: cannot measure "
                     f"localisation ({without} frames without one)")
  hit_rate, baseline = float(np.mean(hits)), float(np.mean(areas))
  return {"hit_rate": hit_rate, "random_baseline": baseline,
          "ratio": hit_rate / baseline if baseline else None,
          "num_frames": len(hits), "num_without_object": without}


def box_contrast(heatmap: localize.Heatmap,
                 boxes: Sequence[Sequence[float]]) -> float:
  """Mean of the grid cells whose centre lies in a box minus the mean of the
  other cells: how much more the boxes support the correspondence."""
  rows, cols = heatmap.grid.shape
  height, width = heatmap.frame.shape[:2]
  half = localize.CELL_STRIDE / 2
  xs = (localize.CELL_STRIDE * np.arange(cols) + half) / width
  ys = (localize.CELL_STRIDE * np.arange(rows) + half) / height
  covered = _in_boxes(xs, ys, boxes)  # [rows, cols]
  if covered.all() or not covered.any():
    return 0.0
  return float(heatmap.grid[covered].mean() - heatmap.grid[~covered].mean())


def mismatched_partners(examples: examples_lib.Examples) -> np.ndarray:
  """For each example, an example of another video, with another label when
  labelled: the first video after its own, in reading order (cyclically),
  that qualifies; -1 when none does."""
  _, first = np.unique(examples.video_ids, return_index=True)
  first = np.sort(first)  # each video's first example, in reading order
  position = {examples.video_ids[i]: p for p, i in enumerate(first)}
  partners = np.full(len(examples), -1, np.int64)
  for i in range(len(examples)):
    start = position[examples.video_ids[i]]
    for step in range(1, len(first)):
      j = first[(start + step) % len(first)]
      if examples.labels[i] < 0 or examples.labels[j] != examples.labels[i]:
        partners[i] = j
        break
  return partners


def sound_dependence(localizer: localize.Localizer, examples: examples_lib.Examples,
                     boxes_of: BoxesFn) -> dict[str, Any]:
  """Whether the heatmap follows the sound rather than what merely stands out.

  For every frame showing a sounding object, the box contrast
  (`box_contrast`) of the heatmap with its own sound and with the sound of
  another video (another class when labelled, `mismatched_partners`).
  A map driven by saliency alone gives both the same contrast.

  Returns:
    {"own_contrast", "other_contrast" (means), "own_higher" (share of frames
     where the own sound gives the higher contrast), "num_frames"}.
  """
  partners = mismatched_partners(examples)
  own, other = [], []
  for i in range(len(examples)):
    boxes = [list(b) for b in boxes_of(str(examples.video_ids[i]),
                                       float(examples.frame_times[i]))]
    if not boxes or partners[i] < 0:
      continue
    frame = examples.frame(i)
    own.append(box_contrast(localizer(frame, examples.waveform(i)), boxes))
    other.append(box_contrast(
        localizer(frame, examples.waveform(partners[i])), boxes))
  if not own:
    raise ValueError("no example shows a sounding object with a partner of "
                     "another video")
  own, other = np.array(own), np.array(other)
  return {"own_contrast": float(own.mean()),
          "other_contrast": float(other.mean()),
          "own_higher": float(np.mean(own > other)),
          "num_frames": int(own.size)}


def localization_pairs(examples: examples_lib.Examples, count: int) -> list[tuple[int, int]]:
  """(example, example of another video) pairs: the first example of each
  of `count` videos, each with the sound of its `mismatched_partners`
  partner (the next video in reading order with a different label), or of
  the next video when no video has another label."""
  _, first = np.unique(examples.video_ids, return_index=True)
  first = np.sort(first)  # each video's first example, in reading order
  if len(first) < 2:
    return []
  partners = mismatched_partners(examples)
  return [(int(i), int(partners[i] if partners[i] >= 0
                       else first[(position + 1) % len(first)]))
          for position, i in enumerate(first[:count])]


def localization_figures(localizer: localize.Localizer, examples: examples_lib.Examples,
                         output_dir: str, count: int) -> list[dict]:
  """One PNG per pair: the frame, the heatmap of its own sound, and the
  heatmap of another video's sound, each on its own colour scale (its range
  is in the caption)."""
  if count == 0:
    return []
  folder = os.path.join(output_dir, "localization")
  os.makedirs(folder, exist_ok=True)
  shown = []
  for n, (i, j) in enumerate(localization_pairs(examples, count)):
    frame = examples.frame(i)
    own = localizer(frame, examples.waveform(i))
    other = localizer(frame, examples.waveform(j))
    name = examples.label_name(i)

    def caption(heatmap, what):
      return (f"{what}: P(corresponds) {heatmap.probability:.3f}\n"
              f"map {heatmap.pixels.min():.3f} (blue) .. "
              f"{heatmap.pixels.max():.3f} (red)")

    panels = [
        (lambda ax: overlays.draw_image_overlay(ax, own.frame, None),
         f"{examples.video_ids[i]} @{examples.frame_times[i]:.2f}s"
         + (f"\n{name}" if name else "")),
        (lambda ax: overlays.draw_image_overlay(ax, own.frame, own.pixels),
         caption(own, "its own sound")),
        (lambda ax: overlays.draw_image_overlay(ax, own.frame, other.pixels),
         caption(other, f"sound of {os.path.basename(examples.video_ids[j])}")),
    ]
    path = overlays.save_grid(
        panels, os.path.join(folder, f"pair_{n:02d}.png"),
        "where the sound comes from: P(corresponds) of the sound with each "
        "location of the frame", columns=3, panel_inches=(3.0, 3.0))
    peak_x, peak_y = localize.peak_position(own)
    shown.append({"video_id": str(examples.video_ids[i]),
                  "frame_time": float(examples.frame_times[i]),
                  "other_video_id": str(examples.video_ids[j]),
                  "probability": own.probability,
                  "other_probability": other.probability,
                  "peak": [peak_x, peak_y],
                  "file": os.path.relpath(path, output_dir)})
  return shown
