"""The architecture as a test: l3_tf's subpackages import only downwards.

    platform < data < model < training < analysis < serving < evaluation

Data and model are the bottom (the model reads the audio constants and image
ops of `data`); training is above them; analysis reads trained workdirs;
serving draws analysis's heatmaps (`l3-score --heatmap`); evaluation embeds
through serving. `data_prep/` (the dataset builders) stands on `data` and
`platform` only; `experiments/` and `benchmarks/` are on top. Every import
counts, including the lazy ones inside functions: a lazy import against the
order is still a dependency against it.
"""

import ast
import pathlib
import sys

import pytest

from tests import testing

LAYERS = ("platform", "data", "model", "training", "analysis", "serving",
          "evaluation")
# What the other top-level folders may import from l3_tf.
OTHER_ROOTS = {
    "data_prep": {"platform", "data"},
    "experiments": set(LAYERS),
    "benchmarks": set(LAYERS),
}
# l3_tf/ itself holds only its package file (the public names) and the
# subpackages: at most 3 files at its top (issue 23).
MAX_TOP_LEVEL_FILES = 3
ROOT = testing.REPO_ROOT


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path) -> list[tuple[int, str]]:
  """(line, absolute module) of every import in the file, lazy ones included."""
  tree = ast.parse(path.read_text(), filename=str(path))
  package = _module_name(path)
  if path.name != "__init__.py":
    package = package.rpartition(".")[0]
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found += [(node.lineno, alias.name) for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:  # relative: resolve against the importing package
        anchor = package.split(".")
        anchor = anchor[:len(anchor) - node.level + 1]
        base = ".".join(anchor + ([base] if base else []))
      # `from l3_tf.data import media` imports the module l3_tf.data.media.
      found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
      found.append((node.lineno, base))
  return found


def _layer(module: str) -> str | None:
  parts = module.split(".")
  return parts[1] if parts[0] == "l3_tf" and len(parts) > 1 else None


def _library_files():
  return sorted((ROOT / "l3_tf").rglob("*.py"))


def test_l3_tf_top_level_is_the_package_file_and_subpackages():
  top = sorted(p.name for p in (ROOT / "l3_tf").glob("*.py"))
  assert len(top) <= MAX_TOP_LEVEL_FILES, top
  folders = sorted(p.name for p in (ROOT / "l3_tf").iterdir()
                   if p.is_dir() and p.name != "__pycache__")
  assert sorted(folders) == sorted(LAYERS), (
      f"l3_tf/ has subpackages {folders}; the layering declares {LAYERS}: "
      "add a new one to LAYERS at its place in the order")
  for folder in folders:
    assert (ROOT / "l3_tf" / folder / "__init__.py").is_file(), folder


# Issue 23: a module over this many lines is split by concern (STYLE.md).
MAX_MODULE_LINES = 600


def test_no_library_module_is_over_the_line_limit():
  long = {str(path.relative_to(ROOT)): n for path in _library_files()
          if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
  assert not long, (f"modules over {MAX_MODULE_LINES} lines: {long}; split "
                    "them by concern, not in halves")


def test_library_imports_only_its_own_or_lower_layers():
  rank = {name: i for i, name in enumerate(LAYERS)}
  violations = []
  for path in _library_files():
    own = _layer(_module_name(path))
    for line, module in _imports(path):
      if module.split(".")[0] in ("experiments", "benchmarks", "tests",
                                  "data_prep"):
        violations.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
      target = _layer(module)
      if own is None or target is None or target not in rank:
        continue  # l3_tf/__init__.py (the public names) stands on top
      if rank[target] > rank[own]:
        violations.append(f"{path.relative_to(ROOT)}:{line} ({own}) imports "
                          f"{module} ({target}, a higher layer)")
  assert not violations, "\n".join(violations)


@pytest.mark.parametrize("root", sorted(OTHER_ROOTS))
def test_other_folders_import_only_what_they_stand_on(root):
  allowed = OTHER_ROOTS[root]
  violations = []
  for path in sorted((ROOT / root).rglob("*.py")):
    if path.name.endswith("_test.py"):
      continue  # a builder's test may train or embed to check its output
    for line, module in _imports(path):
      target = _layer(module)
      if target is not None and target not in allowed:
        violations.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
  assert not violations, "\n".join(violations)


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """One import cycle of the graph (module -> modules it imports), or None."""
  state, stack = {}, []

  def visit(node):
    state[node] = "open"
    stack.append(node)
    for nxt in sorted(graph.get(node, ())):
      if state.get(nxt) == "open":
        return stack[stack.index(nxt):] + [nxt]
      if nxt not in state:
        cycle = visit(nxt)
        if cycle:
          return cycle
    stack.pop()
    state[node] = "done"
    return None

  for node in sorted(graph):
    if node not in state:
      cycle = visit(node)
      if cycle:
        return cycle
  return None


def test_no_import_cycle_between_library_modules():
  modules = {_module_name(p): p for p in _library_files()}
  graph = {}
  for name, path in modules.items():
    if name == "l3_tf":
      continue  # the package file only re-exports, lazily
    graph[name] = {module for _, module in _imports(path)
                   if module in modules and module not in (name, "l3_tf")}
  cycle = _find_cycle(graph)
  assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checks_see_a_violation_and_a_cycle(tmp_path, monkeypatch):
  """The parser resolves the import forms the checks rely on; cycles are found."""
  fake = tmp_path / "l3_tf" / "data"
  fake.mkdir(parents=True)
  (tmp_path / "l3_tf" / "__init__.py").write_text("")
  (fake / "__init__.py").write_text("")
  (fake / "a.py").write_text(
      "def f():\n  from l3_tf.serving import embed\n"
      "from . import b\nfrom ..training import workdir as w\n")
  monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
  found = dict((m, l) for l, m in _imports(fake / "a.py"))
  assert {"l3_tf.serving.embed", "l3_tf.data.b",
          "l3_tf.training.workdir"} <= set(found)
  assert _layer("l3_tf.serving.embed") == "serving"
  assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
  assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
