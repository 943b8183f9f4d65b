"""Figures live in results, not in code: no measured figure in the comments,
docstrings or string literals of fser_jax/**/*.py, configs/*.py, launch.py.

A measured figure is a match of FIGURE in one comment or string literal
(Python's `tokenize`: COMMENT and STRING tokens, an f-string as the source
text it spans):
  - a date, `20YY-MM`;
  - a throughput, a number before `ex/s` (`141 ex/s`, `303-350 ex/s`);
  - a ratio against Keras, `x Keras` (`1.24x Keras`);
  - a commit, `commit` and seven hex digits.
Two exceptions, neither a figure typed into code:
  - `ex/s` (or `x Keras`) that prints or labels a live value, i.e. one with no digit
    before it (spaces and a range's dash skipped) in that literal: after a
    replacement field (`f"{rate:.1f} ex/s"`), after a % conversion
    (`"%.0f ex/s"`), or a column heading of a table the code fills
    (`"| ex/s |"`);
  - a match inside the path of a results file (RESULTS_PATH: a `.json`
    under a `results/` folder), whose name carries its date
    (`docs/results/quickstart/defaults_xeon-amx_2026-12-06.json`).
Nothing else is let through: the figures themselves go to docs/ and
docs/results/, and a comment says the reason they support. The results a
config's docstring names must exist (`test_linked_results_exist`).

Files another cleanup still has to fix are listed in NOT_YET_FIXED and
expected to fail (strictly: once a file is fixed its entry must go)."""

import ast
import glob
import io
import os
import re
import tokenize

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FIGURE = re.compile(r"20[0-9]{2}-[0-9]{2}|ex/s|x Keras|commit [0-9a-f]{7}")
# A number typed before `ex/s` (spaces and a range's dash allowed): what
# makes an `ex/s` a figure rather than a live value's unit.
_NUMBER_BEFORE = re.compile(r"[0-9][0-9.,]*(\s*[-\u2013]\s*[0-9.,]+)?\s*$")
# A results file's path: a name under a results/ folder ending in .json,
# with shell braces and globs allowed (`seed{0,1}`, `plus_*.json`).
RESULTS_PATH = re.compile(r"[\w./{},*-]*\bresults/[\w./{},*-]+\.json")

NOT_YET_FIXED: dict = {}  # path: why it is not fixed yet


def _texts(source: str):
  """(line, text) of every comment and string literal in `source`."""
  lines = source.splitlines(keepends=True)
  offsets = [0]
  for line in lines:
    offsets.append(offsets[-1] + len(line))
  at = lambda pos: offsets[pos[0] - 1] + pos[1]
  fstring_start = getattr(tokenize, "FSTRING_START", None)  # Python >= 3.12
  fstring_end = getattr(tokenize, "FSTRING_END", None)
  depth, start = 0, None
  for tok in tokenize.generate_tokens(io.StringIO(source).readline):
    if fstring_start is not None and tok.type == fstring_start:
      if depth == 0:
        start = tok.start
      depth += 1
    elif fstring_end is not None and tok.type == fstring_end:
      depth -= 1
      if depth == 0:
        yield start[0], source[at(start):at(tok.end)]
    elif depth == 0 and tok.type in (tokenize.COMMENT, tokenize.STRING):
      yield tok.start[0], tok.string


def figures(source: str) -> list[tuple[int, str]]:
  """(line, the literal's matching line) for every measured figure in
  `source`'s comments and string literals."""
  out = []
  for line, text in _texts(source):
    paths = [p.span() for p in RESULTS_PATH.finditer(text)]
    for m in FIGURE.finditer(text):
      if m.group() in ("ex/s", "x Keras") and \
          not _NUMBER_BEFORE.search(text[:m.start()]):
        continue  # a live value's unit, not a typed figure
      if any(a <= m.start() and m.end() <= b for a, b in paths):
        continue  # a results file's name
      row = text[:m.start()].count("\n")
      out.append((line + row, text.splitlines()[row].strip()))
  return out


def _files() -> list[str]:
  paths = glob.glob(os.path.join(ROOT, "fser_jax", "**", "*.py"),
                    recursive=True)
  paths += glob.glob(os.path.join(ROOT, "configs", "*.py"))
  paths.append(os.path.join(ROOT, "launch.py"))
  return sorted(os.path.relpath(p, ROOT) for p in paths)


def _params():
  for rel in _files():
    why = NOT_YET_FIXED.get(rel)
    marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
    yield pytest.param(rel, marks=marks, id=rel)


@pytest.mark.parametrize("rel", _params())
def test_no_measured_figure_in_code(rel):
  with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
    found = figures(f.read())
  assert not found, "\n".join(f"{rel}:{n}: {t}" for n, t in found)


def _expand(pattern: str) -> list[str]:
  """Shell braces, one level: `a{0,1}b` -> [`a0b`, `a1b`]."""
  m = re.search(r"\{([^{}]*)\}", pattern)
  if not m:
    return [pattern]
  return [x for alt in m.group(1).split(",")
          for x in _expand(pattern[:m.start()] + alt + pattern[m.end():])]


CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.py")))


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_linked_results_exist(path):
  """Every results file a config's docstring names is committed (braces
  and globs each match at least one file)."""
  with open(path, encoding="utf-8") as f:
    doc = ast.get_docstring(ast.parse(f.read())) or ""
  missing = [p for m in RESULTS_PATH.finditer(doc)
             for p in _expand(m.group())
             if not glob.glob(os.path.join(ROOT, p))]
  assert not missing, missing


def test_the_not_yet_fixed_files_exist():
  """A moved or deleted file leaves no stale entry behind."""
  assert set(NOT_YET_FIXED) <= set(_files())


def test_the_rule_on_examples():
  src = '''
# measured 141 ex/s on an AVX2 EPYC
x = 1  # 2026-12-06
def f(rate, n):
  """1.34-1.46x Keras float32 (commit 4eeb2d1)."""
  log(f"{rate:.1f} ex/s")
  log("%d steps | %.0f ex/s" % (n, rate))
  log("| conv_impl | ex/s |")
  log(f"{rate:.0f}" " ex/s against 303-350 ex/s")
  commit_4eeb2d1 = "ex/s"
'''
  assert figures(src) == [
      (2, "# measured 141 ex/s on an AVX2 EPYC"),
      (3, "# 2026-12-06"),
      (5, '"""1.34-1.46x Keras float32 (commit 4eeb2d1)."""'),
      (5, '"""1.34-1.46x Keras float32 (commit 4eeb2d1)."""'),
      (9, '" ex/s against 303-350 ex/s"'),
  ]
  # A results file's name carries its date; the same date outside it does
  # not pass.
  assert figures(
      '# docs/results/quickstart/defaults_xeon-amx_2026-12-06.json\n'
      '# benchmarks/results/train_step_{float32,bfloat16}_x_2026-12-06.json'
      ' (2026-12-06)\n') == [
          (2, "# benchmarks/results/train_step_{float32,bfloat16}_x_"
              "2026-12-06.json (2026-12-06)")]
  assert _expand("r/seed{0,1}_{a,b}.json") == [
      "r/seed0_a.json", "r/seed0_b.json", "r/seed1_a.json", "r/seed1_b.json"]
  # A docstring's later line is reported at its own line number.
  assert figures('"""One.\n\nTwo, 2026-11-25.\n"""\n') == [
      (3, "Two, 2026-11-25.")]
