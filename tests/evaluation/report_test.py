"""The results report: records -> table -> the marked part of WORKSPACE.md."""

import subprocess
import sys

import pytest

from l3_tf.evaluation import records
from l3_tf.evaluation import report

ENV = {"hardware": "Test CPU, 2 CPU cores, 0 GPU(s)",
       "load_average_1_5_15_min_at_start": [1.5, 1.0, 0.5],
       "load_average_1_5_15_min_at_end": [2.25, 1.0, 0.5],
       "date": "2026-01-02T03:04:05+00:00"}


def _record(experiment, dataset, method, value, **details):
  return records.make_record(
      experiment=experiment, dataset=dataset, method=method,
      metric="top1" if experiment == "linear_probe" else "accuracy",
      value=value, details=details,
      scale={"data": f"{dataset} full", "network": "full (64, 128, 256, 512)",
             "training": "untrained (random initialisation)"},
      command_line="python -m experiments.x", run_seconds=600.0, env=ENV)


def _write(directory, name, record):
  records.write_record(record, str(directory / f"{name}.json"))


@pytest.fixture
def results_dir(tmp_path):
  folder = tmp_path / "results"
  _write(folder, "esc50_random", _record(
      "sound_classification", "esc50", "Ours random", 0.6,
      fold_accuracies=[0.5, 0.6, 0.7, 0.6, 0.6], std=0.0632))
  _write(folder, "esc10_demo", _record(
      "sound_classification", "esc10", "L3-Net", 0.725,
      fold_accuracies=[0.7, 0.75, 0.7, 0.725, 0.75], std=0.02))
  _write(folder, "avc_synthetic_l3", _record(
      "avc", "synthetic_av/default", "L3-Net", 0.8125))
  _write(folder, "probe_frames", _record(
      "linear_probe", "synthetic_av_frames", "L3-Net", 0.5, top5=0.9,
      top5_k=5))
  return folder


def test_table_sets_every_paper_figure_beside_ours(results_dir):
  table = report.render_table(records.read_records(str(results_dir)))
  rows = [line for line in table.splitlines() if line.startswith("| ")][1:]
  cells = [[c.strip() for c in row.strip("|").split(" | ")] for row in rows]
  by_key = {(c[1], c[2]): c for c in cells}
  # Every figure of PAPER.md §5 has its row.
  for figure in report.PAPER_FIGURES:
    key = (report.DATASET_NAMES[figure.dataset], figure.method)
    assert by_key[key][4] == figure.figure
  esc50_random = by_key[("ESC-50", "Ours random")]
  assert esc50_random[3] == "60.0% ± 6.3 (5 folds)"
  assert esc50_random[4] == "62.5% (recalled)"
  assert "data: esc50 full" in esc50_random[5]
  assert "Test CPU, 2 CPU cores" in esc50_random[5] and "load 1.5 -> 2.25" in esc50_random[5]
  assert "2026-01-02" in esc50_random[5] and "10.0 min" in esc50_random[5]
  assert esc50_random[6] == "`results/esc50_random.json`"
  assert by_key[("ESC-50", "L3-Net")][3] == "not measured"
  assert by_key[("ESC-50", "human")][3] == "(not ours)"
  # Datasets the paper does not use: the nearest paper figure beside ours.
  assert by_key[("ESC-10", "L3-Net")][4] == "not in the paper (ESC-50: 79.3%)"
  assert by_key[("synthetic_av", "L3-Net")][4] == (
      "not in the paper (Kinetics-Sounds: 74%)")
  assert by_key[("synthetic_av_frames", "L3-Net")][4] == (
      "not in the paper (ImageNet: 32.3% top-1)")
  assert report.paper_figure({}, ("avc", "synthetic_av", "L3-Net")) == (
      "not in the paper")
  assert by_key[("synthetic_av", "L3-Net")][3] == "81.2%"
  assert by_key[("synthetic_av_frames", "L3-Net")][3] == "top-1 50.0%, top-5 90.0%"
  # Paper order: AVC rows first, then sound classification, then the probe.
  experiments = [c[0] for c in cells]
  assert experiments.index("sound classification") > experiments.index(
      "AVC accuracy")
  assert experiments[-1] == "visual linear probe"


def test_update_text_touches_only_the_marked_part():
  before = "# Workspace\n\nlead's text\n\n## Results\n\nNone yet.\n\n## Later\nmore\n"
  first = report.update_text(before, "| table 1 |\n")
  assert first.startswith("# Workspace\n\nlead's text\n\n## Results\n\n"
                          + report.BEGIN)
  assert first.endswith(report.END + "\n\nNone yet.\n\n## Later\nmore\n")
  edited = first.replace("lead's text", "the lead edited this")
  second = report.update_text(edited, "| table 2 |\n")
  assert "| table 2 |" in second and "| table 1 |" not in second
  assert second.replace("| table 2 |", "| table 1 |") == edited
  assert report.update_text(second, "| table 2 |\n") == second
  appended = report.update_text("# Title\n", "| t |\n")
  assert appended.startswith("# Title\n\n## Results\n\n" + report.BEGIN)
  with pytest.raises(ValueError, match="markers are malformed"):
    report.update_text(f"x\n{report.END}\n{report.BEGIN}\n", "t")
  with pytest.raises(ValueError, match="markers are malformed"):
    report.update_text(f"x\n{report.BEGIN}\n", "t")


def test_bad_record_is_named(tmp_path):
  (tmp_path / "broken.json").write_text("{not json")
  with pytest.raises(ValueError, match="broken.json: not valid JSON"):
    records.read_records(str(tmp_path))
  (tmp_path / "broken.json").write_text('{"experiment": "avc"}')
  with pytest.raises(ValueError, match=r"broken.json: missing field\(s\)"):
    records.read_records(str(tmp_path))
  with pytest.raises(ValueError, match="value=73.0 is not a fraction"):
    _record("avc", "x", "L3-Net", 73.0)


def test_binary_regenerates_the_workspace_table(results_dir, tmp_path):
  workspace = tmp_path / "WORKSPACE.md"
  workspace.write_text("# Workspace\n\n| paper | where |\n|---|---|\n\n"
                       "## Results\n\nNone yet.\n")
  command = [sys.executable, "-m", "experiments.report",
             f"--results_dir={results_dir}", f"--workspace={workspace}"]
  run = subprocess.run(command, capture_output=True, text=True, timeout=120)
  assert run.returncode == 0, run.stderr[-2000:]
  text = workspace.read_text()
  assert text.startswith("# Workspace\n\n| paper | where |\n|---|---|\n\n"
                         "## Results\n\n" + report.BEGIN)
  assert text.endswith(report.END + "\n\nNone yet.\n")
  assert "60.0% ± 6.3 (5 folds)" in text
  # A new record, a second run: only the table changes.
  _write(results_dir, "esc50_l3", _record("sound_classification", "esc50",
                                          "L3-Net", 0.5))
  run = subprocess.run(command, capture_output=True, text=True, timeout=120)
  assert run.returncode == 0, run.stderr[-2000:]
  again = workspace.read_text()
  assert "| sound classification | ESC-50 | L3-Net | 50.0% | 79.3% |" in again
  head, tail = text.split(report.BEGIN)[0], text.split(report.END)[1]
  assert again.startswith(head) and again.endswith(tail)


def test_urbansound8k_rows_stand_beside_openl3s_figure(results_dir):
  _write(results_dir, "us8k_demo_mlp", _record(
      "sound_classification", "urbansound8k", "L3-Net (MLP)", 0.5,
      fold_accuracies=[0.4, 0.6], std=0.1))
  _write(results_dir, "us8k_random", _record(
      "sound_classification", "urbansound8k", "Ours random", 0.45))
  table = report.render_table(records.read_records(str(results_dir)))
  rows = [line for line in table.splitlines() if "UrbanSound8K" in line]
  cells = [[c.strip() for c in row.strip("|").split(" | ")] for row in rows]
  assert [c[2] for c in cells] == ["Ours random", "L3-Net (MLP)",
                                   "OpenL3 (MLP)"]
  openl3 = cells[-1]
  assert openl3[3] == "(not ours)"
  assert openl3[4] == report.OPENL3_US8K and "OpenL3's paper" in openl3[4]
  for ours in cells[:2]:  # beside OpenL3's figure, labelled as such
    assert ours[4] == f"not in the paper (OpenL3 (MLP): {report.OPENL3_US8K})"
  assert cells[1][3] == "50.0% ± 10.0 (2 folds)"
