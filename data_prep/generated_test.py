"""The generated-release marker: every dummy_media release carries it."""

import pytest

from data_prep import dummy_media
from data_prep import generated


@pytest.mark.parametrize("name", sorted(dummy_media.WRITERS))
def test_every_release_writer_marks_its_root(tmp_path, monkeypatch, name):
  # The release-sized one, at 20 clips (its code path, not its size).
  monkeypatch.setattr(dummy_media, "US8K_FOLD_SIZES", (2,) * 10)
  root = tmp_path / name
  dummy_media.WRITERS[name](root)
  marker = root / generated.MARKER
  writer = dummy_media.WRITERS[name].__name__
  assert marker.read_text() == generated.marker_text(writer)
  assert f"data_prep.dummy_media.{writer}:" in marker.read_text()
  assert "NOT the real dataset" in marker.read_text()
  assert generated.find_marker(root) == marker
  # A release inside its top folder (UrbanSound8K/, ESC-10-master/).
  assert generated.find_marker(tmp_path) == marker


def test_a_folder_without_the_marker_is_not_generated(tmp_path):
  (tmp_path / "audio" / "fold1").mkdir(parents=True)
  (tmp_path / "audio" / "fold1" / "1-0-0-0.wav").write_bytes(b"RIFF")
  assert generated.find_marker(tmp_path) is None
  # Deeper than a top folder: not looked for (one glob at one level).
  (tmp_path / "audio" / "fold1" / generated.MARKER).write_text("x")
  assert generated.find_marker(tmp_path) is None
  assert generated.find_marker(tmp_path / "audio") is not None


def test_is_marker_only_at_the_root(tmp_path):
  assert generated.is_marker(tmp_path / generated.MARKER, tmp_path)
  assert not generated.is_marker(tmp_path / "dogs" / generated.MARKER,
                                 tmp_path)
  assert not generated.is_marker(tmp_path / "notes.txt", tmp_path)
