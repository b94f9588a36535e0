"""Imports against setup.py: nothing imported undeclared, nothing declared unused.

How it works (no package is imported or installed; all static):

  1. setup.py is parsed with `ast`: `install_requires` and every
     `extras_require` list give distribution names (the text before any
     version or marker; f-string entries are read up to their first
     placeholder).
  2. Every `import x` / `from x import y` (absolute), `pytest.importorskip`
     and `importlib.import_module` of a constant name in l3_tf/, data_prep/,
     experiments/, benchmarks/ and tests/ is collected with the line it is
     on; the standard library (`sys.stdlib_module_names`) and the project's
     own modules are dropped.
  3. `IMPORT_TO_DIST` maps each remaining top-level import name to the
     distribution that provides it. An import missing from the map fails:
     add the dependency to setup.py and the name here.
  4. Checks: every imported distribution is declared (runtime code: in
     install_requires or an extra; tests: also the test extra); an import of
     an extra's package in l3_tf/, data_prep/ or experiments/ is lazy (inside
     a function, or guarded by try/except ImportError), so that the base
     install imports; and every install_requires distribution is imported
     somewhere, unless `NOT_IMPORTED` says why it is declared anyway.
"""

import ast
import os
import re
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNTIME_DIRS = ("l3_tf", "data_prep", "experiments")
OTHER_DIRS = ("benchmarks", "tests")
FIRST_PARTY = {"l3_tf", "data_prep", "experiments", "benchmarks", "tests"}

# Top-level import name -> distribution (as spelled in setup.py).
IMPORT_TO_DIST = {
    "absl": "absl-py",
    "ai_edge_litert": "ai-edge-litert",
    "apache_beam": "apache-beam",
    "av": "av",
    "boto3": "moto",  # moto's client library; moto[server] installs it
    "etils": "etils",
    "hypothesis": "hypothesis",
    "keras": "keras",
    "matplotlib": "matplotlib",
    "moto": "moto",
    "numpy": "numpy",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime",
    "PIL": "pillow",
    "pyarrow": "pyarrow",
    "pytest": "pytest",
    "scipy": "scipy",
    "sklearn": "scikit-learn",
    "tensorflow": "tensorflow",
    "tensorflow_datasets": "tensorflow-datasets",
    "tensorflow_io": "tensorflow-io",
    "tf2onnx": "tf2onnx",
    "torch": "torch",
    "tqdm": "tqdm",
    "usearch": "usearch",
    "faiss": "faiss-cpu",
    "hnswlib": "hnswlib",
}

# Declared runtime dependencies that no line imports, and why.
NOT_IMPORTED = {
    "protobuf": "a pin: TF 2.16 breaks with protobuf >= 5",
    "tensorflow-metadata": "a pin: the release TFDS can import with that "
                           "protobuf",
    "tensorboard": "implements tf.summary (not installed by TF >= 2.20)",
    "importlib_resources": "TFDS 4.9 needs it for builders outside its package",
    "mlcroissant": "the `tfds build` command line imports it",
}


def _requirement_name(node: ast.expr) -> str:
  if isinstance(node, ast.Constant):
    text = node.value
  elif isinstance(node, ast.JoinedStr):
    text = "".join(part.value for part in node.values
                   if isinstance(part, ast.Constant))
  else:
    raise AssertionError(f"setup.py: cannot read requirement {ast.dump(node)}")
  match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", text)
  assert match, f"setup.py: no distribution name in {text!r}"
  return match.group(1)


def declared() -> tuple[set[str], dict[str, set[str]]]:
  """(install_requires names, {extra: names}) as written in setup.py."""
  with open(os.path.join(_ROOT, "setup.py")) as f:
    tree = ast.parse(f.read())
  setup = next(node for node in ast.walk(tree) if isinstance(node, ast.Call)
               and getattr(node.func, "attr", None) == "setup")
  keywords = {k.arg: k.value for k in setup.keywords}
  base = {_requirement_name(e) for e in keywords["install_requires"].elts}
  extras = {key.value: {_requirement_name(e) for e in value.elts}
            for key, value in zip(keywords["extras_require"].keys,
                                  keywords["extras_require"].values)}
  return base, extras


def _python_files(folder: str):
  for root, dirs, files in os.walk(os.path.join(_ROOT, folder)):
    dirs[:] = [d for d in dirs if not d.startswith((".", "__"))]
    for name in sorted(files):
      if name.endswith(".py"):
        yield os.path.join(root, name)


def _guarded(node, parents) -> bool:
  """Whether an import runs only on demand: in a function, or in a try whose
  handlers catch ImportError."""
  for parent in parents:
    if isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef)):
      return True
    if isinstance(parent, ast.Try) and node in ast.walk(
        ast.Module(body=parent.body, type_ignores=[])):
      for handler in parent.handlers:
        names = {getattr(n, "id", getattr(n, "attr", "")) for n in ast.walk(
            handler.type)} if handler.type else {"ImportError"}
        if names & {"ImportError", "ModuleNotFoundError", "Exception"}:
          return True
  return False


def _dynamic_import(node) -> str | None:
  """The module of `pytest.importorskip("m")` / `importlib.import_module("m")`
  / `export_formats.require("m")` (lazy by nature), else None."""
  if not (isinstance(node, ast.Call) and node.args and
          isinstance(node.args[0], ast.Constant) and
          isinstance(node.args[0].value, str)):
    return None
  name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
  if name in ("importorskip", "import_module", "require"):
    return node.args[0].value
  return None


def imports(folder: str):
  """(import name, file:line, lazy) of every third-party import under
  `folder`."""
  stdlib = set(sys.stdlib_module_names)
  for path in _python_files(folder):
    with open(path) as f:
      tree = ast.parse(f.read(), path)
    local = {os.path.splitext(n)[0] for n in os.listdir(os.path.dirname(path))}
    parents = {}
    for node in ast.walk(tree):
      for child in ast.iter_child_nodes(node):
        parents[child] = node

    def chain(node):
      while node in parents:
        node = parents[node]
        yield node

    for node in ast.walk(tree):
      dynamic = _dynamic_import(node)
      if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
      elif isinstance(node, ast.ImportFrom) and not node.level:
        names = [node.module]
      elif dynamic:
        names = [dynamic]
      else:
        continue
      for name in names:
        top = name.split(".")[0]
        if top in stdlib or top in FIRST_PARTY or top in local:
          continue
        where = f"{os.path.relpath(path, _ROOT)}:{node.lineno}"
        yield top, where, bool(dynamic) or _guarded(node, list(chain(node)))


def test_every_import_is_declared_and_extras_are_lazy():
  base, extras = declared()
  optional = set().union(*extras.values())
  problems = []
  for folder in RUNTIME_DIRS + OTHER_DIRS:
    for name, where, lazy in imports(folder):
      dist = IMPORT_TO_DIST.get(name)
      if dist is None:
        problems.append(f"{where}: imports {name!r}, which is not in "
                        "IMPORT_TO_DIST: declare it in setup.py and map it")
      elif dist not in base | optional:
        problems.append(f"{where}: imports {name!r} from {dist!r}, which "
                        "setup.py does not declare")
      elif (folder in RUNTIME_DIRS and dist not in base and not lazy
            and not os.path.basename(where).startswith(("test_",))
            and "_test.py" not in where):
        problems.append(f"{where}: imports {name!r} (extra-only {dist!r}) at "
                        "module level; import it lazily behind one door")
  assert not problems, "\n".join(problems)


def test_every_declared_runtime_dependency_is_used():
  base, extras = declared()
  imported = {IMPORT_TO_DIST.get(name)
              for folder in RUNTIME_DIRS + OTHER_DIRS
              for name, _, _ in imports(folder)}
  unused = sorted(base - imported - set(NOT_IMPORTED))
  assert not unused, (f"install_requires declares {unused} but nothing "
                      "imports them: drop them or say why in NOT_IMPORTED")
  stale = sorted(d for d in NOT_IMPORTED if d in imported or d not in base)
  assert not stale, f"NOT_IMPORTED entries no longer needed: {stale}"
  for extra, names in extras.items():
    if extra in ("gpu", "test"):
      continue  # gpu: CUDA wheels of TF; test: pytest plugins and tools.
    assert names & imported, f"extra {extra!r} ({sorted(names)}) is unused"


def test_the_map_has_no_dead_entries():
  used = {name for folder in RUNTIME_DIRS + OTHER_DIRS
          for name, _, _ in imports(folder)}
  unused = sorted(set(IMPORT_TO_DIST) - used)
  assert not unused, f"IMPORT_TO_DIST maps names nothing imports: {unused}"
