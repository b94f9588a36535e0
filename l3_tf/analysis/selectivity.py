"""Per-unit label purity of trained and random networks (PAPER.md §5).

Part of `l3_tf.analysis.visualize`: each network's and modality's units,
their purity against a label-shuffling null (`l3_tf.analysis.units`).
"""

from typing import Any

import numpy as np

from l3_tf.analysis import unit_figures
from l3_tf.analysis import units as units_lib
from l3_tf.data import frame_sound_examples as examples_lib


def _selectivity_of(per_video: np.ndarray, labels: np.ndarray, k: int,
                    threshold: float, null_repeats: int, seed: int) -> dict:
  summary = units_lib.selectivity_summary(per_video, labels, k, threshold)
  summary["null"] = units_lib.permutation_null(per_video, labels, k, threshold,
                                               null_repeats, seed)
  return summary


def selectivity(activations: dict[str, dict[str, np.ndarray]],
                examples: examples_lib.Examples, k: int, threshold: float,
                null_repeats: int, seed: int = 0) -> dict[str, Any]:
  """Per-unit label purity of every network and modality (PAPER.md §5).

  Units rank the labelled videos (`video_level`) by activation magnitude, as
  in the paper, and also by relative activation
  (`units.relative_activations`, which discounts inputs that excite every
  unit); each summary (`units.selectivity_summary`) comes with the
  permutation null of the same activations (video labels shuffled).

  Returns:
    {"k", "threshold", "num_videos", "num_labels", "label_counts",
     "<modality>": {"<network>": magnitude summary + {"num_selective_labels":
     distinct majority labels of the selective units, "null": ...,
     "relative": the same keys for the relative ranking}}}, or
    {"skipped": reason} when the split has too few labelled videos or a
    single label.
  """
  first = next(iter(activations.values()))[units_lib.VISION]
  _, _, labels = unit_figures.video_level(first, examples, labelled_only=True)
  num_labels = len(set(labels.tolist()))
  if len(labels) < k or num_labels < 2:
    return {"skipped": f"{len(labels)} labelled videos with {num_labels} "
                       f"distinct label(s); purity needs >= k={k} videos "
                       "and >= 2 labels"}
  report = {"k": k, "threshold": threshold, "num_videos": int(len(labels)),
            "num_labels": num_labels,
            "label_counts": {(examples.label_names[l] if examples.label_names
                              else str(l)): int(c) for l, c in zip(
                                  *np.unique(labels, return_counts=True))}}
  for modality in units_lib.MODALITIES:
    report[modality] = {}
    for name, per_modality in activations.items():
      per_video, _, _ = unit_figures.video_level(per_modality[modality], examples,
                                    labelled_only=True)
      summary = _selectivity_of(per_video, labels, k, threshold, null_repeats,
                                seed)
      summary["relative"] = _selectivity_of(
          units_lib.relative_activations(per_video), labels, k, threshold,
          null_repeats, seed)
      report[modality][name] = summary
  return report


SUMMARY_KEYS = ("num_units", "num_dead", "num_selective",
                 "num_selective_labels", "mean_purity", "null")


def selectivity_table(report: dict[str, Any]) -> str:
  """One line per modality, network and ranking: selective units (and of how
  many labels), mean purity, and the same with shuffled labels."""
  if "skipped" in report:
    return f"selectivity skipped: {report['skipped']}"
  lines = [f"purity of the top {report['k']} videos per unit, threshold "
           f"{report['threshold']}, {report['num_videos']} videos, "
           f"{report['num_labels']} labels"]
  for ranking in ("magnitude", "relative"):
    for modality in units_lib.MODALITIES:
      for name, summary in report[modality].items():
        s = summary if ranking == "magnitude" else summary["relative"]
        lines.append(
            f"{ranking:9s} {modality:6s} {name:8s} selective "
            f"{s['num_selective']:3d} / {s['num_units']} (dead "
            f"{s['num_dead']}) of {s['num_selective_labels']} labels, mean "
            f"purity {s['mean_purity']:.3f}; shuffled labels: selective "
            f"{s['null']['num_selective']:.1f}, mean purity "
            f"{s['null']['mean_purity']:.3f}")
  return "\n".join(lines)
