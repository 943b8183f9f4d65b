"""The house's shape, read from the imports (module-level and inside
functions): no circle, every import points down a layer, stages never import
experiments, experiments never import each other."""

import ast
import glob
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Lower layers first; a module may import its own layer or lower ones. Each
# layer is a package (the top-level modules errors and config are the lowest).
LAYERS = ["errors", "config", "cpu", "frontend", "model", "datasets",
          "encoders", "evaluation", "data", "train", "runs", "experiments",
          "tools"]
TOP_LEVEL = {"__init__", "errors", "config"}  # the only modules not in a package


def module_name(path: str) -> str:
  rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
  return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def imports() -> dict[str, set[str]]:
  graph = {}
  for path in glob.glob(os.path.join(ROOT, "fser_jax", "**", "*.py"),
                        recursive=True):
    name = module_name(path)
    deps = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
      if isinstance(node, ast.ImportFrom) and node.module and \
          node.module.startswith("fser_jax"):
        for a in node.names:
          full = f"{node.module}.{a.name}"
          deps.add(full if os.path.exists(os.path.join(
              ROOT, *full.split(".")) + ".py") else node.module)
      elif isinstance(node, ast.Import):
        deps |= {a.name for a in node.names if a.name.startswith("fser_jax.")}
    graph[name] = {d for d in deps if d != name and d != "fser_jax"}
  return graph


def layer(module: str) -> int:
  part = module.split(".")[1] if module.count(".") else ""
  if part not in LAYERS:
    raise AssertionError(f"{module}: not in any layer of test_layout.LAYERS")
  return LAYERS.index(part)


def test_the_tree_is_the_layers():
  """`ls fser_jax` shows the layers: every package is one, and at most the
  few shared modules sit at the top."""
  here = os.path.join(ROOT, "fser_jax")
  packages = {n for n in os.listdir(here)
              if os.path.isfile(os.path.join(here, n, "__init__.py"))}
  modules = {n[:-3] for n in os.listdir(here) if n.endswith(".py")}
  assert packages == set(LAYERS) - TOP_LEVEL, packages ^ (set(LAYERS) - TOP_LEVEL)
  assert modules == TOP_LEVEL, modules - TOP_LEVEL
  for pkg in packages:  # each says what it holds
    doc = ast.get_docstring(ast.parse(open(os.path.join(
        here, pkg, "__init__.py"), encoding="utf-8").read()))
    assert doc and len(doc) > 80, pkg


def test_every_import_points_down():
  bad = [f"{m} -> {d}" for m, deps in imports().items() if m != "fser_jax"
         for d in deps if layer(d) > layer(m)]
  assert not bad, "\n".join(sorted(bad))


def test_no_circle():
  graph = imports()
  state = {}

  def visit(m, path):
    if state.get(m) == 1:
      raise AssertionError("circle: " + " -> ".join(path + [m]))
    if state.get(m) == 2:
      return
    state[m] = 1
    for d in graph.get(m, ()):
      visit(d, path + [m])
    state[m] = 2

  for m in graph:
    visit(m, [])


def test_experiments_import_only_their_own_package():
  """An experiment package (learning_curve/) may use its own modules."""
  bad = [f"{m} -> {d}" for m, deps in imports().items()
         if m.startswith("fser_jax.experiments.")
         for d in deps if d.startswith("fser_jax.experiments.")
         and d.split(".")[2] != m.split(".")[2]]
  assert not bad, "\n".join(bad)


def test_train_py_holds_the_step_and_the_loop():
  """The step and the loop; the run directory, the optimizer and state, the
  forward functions and the training inputs live in their own modules."""
  src = open(os.path.join(ROOT, "fser_jax", "train", "loop.py")).read()
  assert len(src.splitlines()) < 300
  for name in ("def make_mesh", "def training_inputs", "def resume",
               "class StopFlag", "def restore_params", "def make_optimizer",
               "def make_infer_fn"):
    assert name not in src, name


def test_restoring_parameters_builds_no_optimizer():
  """A trained run's parameters are restored from its config alone: the
  modules that read a run never build the optimizer's state."""
  for mod in ("train/rundir", "runs/trained"):
    src = open(os.path.join(ROOT, "fser_jax", f"{mod}.py")).read()
    assert "state_lib.create" not in src and "import optimizer" not in src, mod


def test_importing_fser_jax_leaves_the_environment_as_it_was():
  """Importing the library (every package's __init__) changes nothing in
  the process: no XLA_FLAGS, no NUMBA_CPU_NAME, no compilation cache, not
  even JAX imported; fser_jax.cpu.configure() is the one explicit call."""
  import subprocess
  import sys
  code = (
      "import json, os, sys\n"
      "before = dict(os.environ)\n"
      "import fser_jax, fser_jax.cpu, fser_jax.frontend, fser_jax.model, "
      "fser_jax.evaluation, fser_jax.data, fser_jax.train, fser_jax.runs, "
      "fser_jax.experiments, fser_jax.tools, fser_jax.experiments.learning_curve\n"
      "after = dict(os.environ)\n"
      "print(json.dumps({'changed': sorted(k for k in set(before) | set(after)"
      " if before.get(k) != after.get(k)), 'jax': 'jax' in sys.modules}))\n"
      "fser_jax.cpu.configure()\n"
      "print(json.dumps(sorted(k for k in os.environ if before.get(k) != "
      "os.environ[k])))\n")
  env = {k: v for k, v in os.environ.items()
         if k not in ("XLA_FLAGS", "NUMBA_CPU_NAME", "FSER_JAX_XLA_FLAG",
                      "JAX_COMPILATION_CACHE_DIR")}
  r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                     capture_output=True, text=True, timeout=120)
  assert r.returncode == 0, r.stderr[-2000:]
  import json
  first, second = (json.loads(l) for l in r.stdout.splitlines()[-2:])
  assert first == {"changed": [], "jax": False}
  # The explicit call does change it (so the check above can fail).
  assert "NUMBA_CPU_NAME" in second and "JAX_COMPILATION_CACHE_DIR" in second
