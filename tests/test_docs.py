"""The docs' commands name things that exist: every `python launch.py` line
in README.md and docs/ parses against launch.py's flags and its config file's
keys; every `python -m` module and `python benchmarks/...` script exists;
every linked docs page exists; the README stays a front page."""

import glob
import importlib.util
import os
import re
import shlex

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = [os.path.join(ROOT, "README.md")] + sorted(
    glob.glob(os.path.join(ROOT, "docs", "*.md")))


def commands(path: str) -> list[str]:
  """Shell commands in a page's code blocks and inline code, continuation
  lines joined."""
  text = open(path, encoding="utf-8").read()
  blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", text, re.S)
  out = []
  for b in blocks:
    joined = re.sub(r"\\\n\s*", " ", b)
    out += [l.strip() for l in joined.splitlines() if l.strip().startswith(
        ("python ", "pip "))]
  out += [c for c in re.findall(r"`(python [^`]+)`", text)]
  return [c.split(" #")[0].split(" && ")[-1] if "&&" in c else c.split(" #")[0]
          for c in out]


def launch_flags() -> set[str]:
  src = open(os.path.join(ROOT, "launch.py")).read()
  names = set(re.findall(r"DEFINE_\w+\(\s*\"(\w+)\"", src))
  names |= set(re.findall(r"config_flags\.DEFINE_config_file\(\s*\"(\w+)\"",
                          src))
  return names


def load_config(spec: str):
  path, _, arg = spec.partition(":")
  s = importlib.util.spec_from_file_location("cfg", os.path.join(ROOT, path))
  mod = importlib.util.module_from_spec(s)
  s.loader.exec_module(mod)
  return mod.get_config(arg) if arg else mod.get_config()


def _has_key(config, dotted: str) -> bool:
  node = config
  for part in dotted.split("."):
    if part not in node:
      return False
    node = node[part]
  return True


ALL = [(os.path.relpath(p, ROOT), c) for p in PAGES for c in commands(p)]


def test_the_docs_have_commands_to_check():
  assert sum(c.startswith("python launch.py") for _, c in ALL) >= 10


@pytest.mark.parametrize("page,cmd", ALL)
def test_command_names_what_exists(page, cmd):
  try:
    argv = shlex.split(cmd)
  except ValueError:
    argv = cmd.split()
  if argv[:2] == ["python", "-m"]:
    mod = argv[2]
    if mod.startswith("fser_jax"):
      assert importlib.util.find_spec(mod) is not None, f"{page}: {cmd}"
    return
  if len(argv) > 1 and argv[1].startswith("benchmarks/"):
    assert os.path.exists(os.path.join(ROOT, argv[1])), f"{page}: {cmd}"
    return
  if argv[:2] != ["python", "launch.py"]:
    return
  flags = launch_flags()
  config = None
  for a in argv[2:]:
    if not a.startswith("--"):
      continue
    name, _, value = a[2:].partition("=")
    if name.startswith("config."):
      continue
    assert name in flags, f"{page}: --{name} is not a launch.py flag: {cmd}"
    if name == "config":
      spec = value or argv[argv.index(a) + 1]
      assert os.path.exists(os.path.join(ROOT, spec.split(":")[0])), cmd
      config = load_config(spec)
  for a in argv[2:]:
    if a.startswith("--config."):
      key = a[len("--config."):].partition("=")[0]
      assert config is not None, f"{page}: --config.{key} without --config"
      assert _has_key(config, key), f"{page}: no config key {key}: {cmd}"


def test_linked_pages_exist():
  for p in PAGES:
    text = open(p, encoding="utf-8").read()
    for link in re.findall(r"\]\(((?:docs/)?[\w./-]+\.(?:md|png))\)", text):
      base = ROOT if p.endswith("README.md") else os.path.dirname(p)
      assert os.path.exists(os.path.join(base, link)), f"{p}: {link}"


def test_readme_is_a_front_page():
  text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
  assert len(text.splitlines()) < 200
  assert not re.search(r"[A-Z_]{6,}_(TABLE|FIGURES)", text)  # placeholders


NARRATION = re.compile(
    r"\bissue \d+|\bthis round\b|\bthis session\b|\bprevious session|"
    r"\bslower host\b|\bfaster host\b|\bstretch of work\b|\bissue's\b",
    re.I)


def test_no_sentence_narrates_the_work():
  files = PAGES + glob.glob(os.path.join(ROOT, "configs", "*.py")) + glob.glob(
      os.path.join(ROOT, "fser_jax", "**", "*.py"), recursive=True)
  found = []
  for f in files:
    for i, line in enumerate(open(f, encoding="utf-8"), 1):
      if NARRATION.search(line):
        found.append(f"{os.path.relpath(f, ROOT)}:{i}: {line.strip()[:80]}")
  assert not found, "\n".join(found)
