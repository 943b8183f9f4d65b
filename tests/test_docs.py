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


# ------------------------------------------------ results rendered from JSON

from fser_jax.tools import docs as docs_tool  # noqa: E402

RESULTS_HEADER = re.compile(
    r"\bUA\b|\bWA\b|%|ex/s|examples/s|\bwall\b|RSS|ratio|loss|ECE|AURC|"
    r"\bvalue\b|\bunfamiliar\b")
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+")

# Results tables that no committed JSON backs: (page, start of the header
# row) -> why. Each sits on a page that says so ("not backed by a committed
# result", with its commit and CPU). Nothing else may sit outside a block.
UNBACKED = {
    ("README.md", "| protocol | paper's image (fser_fast)"):
        "generalisation runs of e5e7b81/0d7f3d2 (AVX2 EPYC); logs not kept",
    ("docs/generalisation.md", "| protocol | folds | WA %"):
        "e5e7b81 generalisation run (AVX2 EPYC); report.json not committed",
    ("docs/generalisation.md", "| protocol | WA % | ECE %"):
        "the same run's trust table",
    ("docs/generalisation.md", "| fold | test set | clips | WA %"):
        "the same run's per-fold tables",
    ("docs/generalisation.md", "| protocol | paper's image (`fser_fast.py`)"):
        "e5e7b81/0d7f3d2 runs (AVX2 EPYC); logs not kept",
    ("docs/predict.md", "| test set (generalisation run above)"):
        "the e5e7b81 generalisation run's familiarity figures",
    ("docs/predict.md", "| shift | ECE before"):
        "the e5e7b81 generalisation run's calibration figures",
    ("docs/scale.md", "| corpus (clips, training clips)"):
        "46482d7 streaming measurement (AVX2 EPYC); logs not kept",
    ("docs/scale.md", "| build | wall time"):
        "39c7ddc Beam build timing (AVX2 EPYC); logs not kept",
    ("docs/scale.md", "| run | ex/s"):
        "16d2174 multi-process timing (AVX2 EPYC); logs not kept",
    ("docs/your_recordings.md", "| zero-shot, `runs/demo`"):
        "a475ee6 evaluate run (AVX2 EPYC); report not committed",
    ("docs/results/encoders.md", "| run | clips computed"):
        "9224ab2 `--mode embed` under /usr/bin/time; no JSON kept",
    ("docs/results/robustness.md", "| UA % (drop vs clean) | default"):
        "4e640c4 robustness runs (AVX2 EPYC); JSON not kept",
    ("docs/results/robustness.md", "| trained on \\ tested on"):
        "5a9c480 cross-corpus run (AVX2 EPYC); cross.json not kept",
    ("docs/results/robustness.md", "| recipe | UA % (mean"):
        "6b74504 leave-one-corpus-out runs (AVX2 EPYC); logs not kept",
}


def _rel(p):
  return os.path.relpath(p, ROOT)


def tables_outside_blocks(text: str) -> list[tuple[str, list[str]]]:
  """(header row, body rows) of every Markdown table outside generated
  blocks."""
  lines = docs_tool.BLOCK.sub("", text).splitlines()
  out, i = [], 0
  while i < len(lines):
    if lines[i].startswith("|") and i + 1 < len(lines) and re.match(
        r"\|[-| :]+\|$", lines[i + 1]):
      j = i + 2
      while j < len(lines) and lines[j].startswith("|"):
        j += 1
      out.append((lines[i], lines[i + 2:j]))
      i = j
    else:
      i += 1
  return out


def results_like(header: str, body: list[str]) -> bool:
  if RESULTS_HEADER.search(header):
    return True
  return bool(body) and sum(len(DECIMAL.findall(r)) >= 2 for r in body) * 2 >= len(body)


def test_every_generated_block_is_as_rendered():
  found = {}
  for p in docs_tool.pages():
    for name, content in docs_tool.blocks(open(p, encoding="utf-8").read()):
      assert name in docs_tool.RENDERERS, f"{_rel(p)}: no renderer for {name}"
      assert content == docs_tool.render(name), (
          f"{_rel(p)}: block {name} is stale: python -m fser_jax.tools.docs")
      found.setdefault(name, []).append(_rel(p))
  # every renderer is used, and the pages the task names hold their tables
  assert set(found) == set(docs_tool.RENDERERS), set(docs_tool.RENDERERS) - set(found)
  assert "README.md" in found["readme/curve_policy"]
  assert found["curve_policies/summary"] == ["docs/results/curve_policies.md"]
  assert "README.md" in found["quickstart"] and "docs/paper.md" in found["quickstart"]
  for name in ("learning_curve/plus", "learning_curve/all_arms", "learning_curve/cnn"):
    assert found[name] == ["docs/results/learning_curve.md"]
  assert found["robustness/fser_robust"] == ["docs/results/robustness.md"]
  assert found["encoders/head"] == ["docs/results/encoders.md"]
  assert found["performance/train_step"] == ["docs/performance.md"]


def test_check_finds_a_stale_block_and_rewrite_fixes_it(tmp_path):
  import shutil
  for d in ("docs/results", "benchmarks/results"):
    shutil.copytree(os.path.join(ROOT, d), tmp_path / d)
  good = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
  bad = good.replace("Seeds 0/1/2: test UA 0.969/", "Seeds 0/1/2: test UA 0.999/")
  assert bad != good
  (tmp_path / "README.md").write_text(bad, encoding="utf-8")
  assert docs_tool.stale(str(tmp_path)) == ["README.md: quickstart"]
  assert docs_tool.refresh(bad, str(tmp_path)) == good
  (tmp_path / "README.md").write_text(good, encoding="utf-8")
  assert docs_tool.stale(str(tmp_path)) == []
  assert docs_tool.main(["--check"]) == 0


def test_no_results_table_outside_generated_blocks():
  seen, found = set(), []
  for p in docs_tool.pages():
    text = open(p, encoding="utf-8").read()
    for header, body in tables_outside_blocks(text):
      if not results_like(header, body):
        continue
      key = next((k for k in UNBACKED if k[0] == _rel(p) and header.startswith(k[1])),
                 None)
      if key is None:
        found.append(f"{_rel(p)}: {header[:70]}")
      else:
        seen.add(key)
        assert "not backed by a committed result" in text.lower(), _rel(p)
  assert not found, "results tables outside generated blocks:\n" + "\n".join(found)
  assert seen == set(UNBACKED), set(UNBACKED) - seen  # no stale allow-list entry


def test_the_detector_sees_a_hand_typed_results_table():
  text = "x\n\n| set | head | baseline |\n|---|---|---|\n| a | 91.7 | 88.3 |\n"
  (header, body), = tables_outside_blocks(text)
  assert results_like(header, body)
  wrapped = ("<!-- generated: encoders/head -->\n" + text[3:]
             + "<!-- end generated -->\n")
  assert tables_outside_blocks(wrapped) == []
  assert not results_like("| mode | what it does | page |", ["| a | b | c |"])


def test_the_reviewers_figures_come_out_as_the_json_has_them():
  s = docs_tool.render("learning_curve/plus_summary")
  assert "Greek k = 10 (-5.3); Greek k = 20 (-3.0)" in s
  assert "`baseline_speaker`): -3.9 to +7.3 points over the 16 cells" in s
  a = docs_tool.render("learning_curve/all_arms_summary")
  assert "French k = 20 (48.2 against 60.2), -14.5 points against `baseline_speaker`" in a
  for p in docs_tool.pages():
    text = open(p, encoding="utf-8").read()
    assert "0.4-5" not in text and "0.4\n  to 5.3" not in text, _rel(p)


def test_curve_figures_in_readme_and_learning_curve_pages_are_generated():
  """Outside generated blocks, the curve's pages state no UA figure."""
  for rel, start, end in (("README.md", "## Your recordings", "## Modes"),
                          ("docs/learning_curve.md", "## Measured", None),
                          ("docs/results/learning_curve.md", "## Six arms", None)):
    text = open(os.path.join(ROOT, rel), encoding="utf-8").read()
    part = text[text.index(start):text.index(end) if end else None]
    prose = docs_tool.BLOCK.sub("", part)
    prose = re.sub(r"```.*?```|`[^`]*`", "", prose, flags=re.S)
    figures = DECIMAL.findall(prose) + re.findall(r"\d+\+? points", prose)
    assert not figures, (rel, figures)


def test_long_pages_split_into_how_to_and_results():
  for name in ("learning_curve", "robustness", "encoders"):
    how = open(os.path.join(ROOT, "docs", f"{name}.md"), encoding="utf-8").read()
    res = open(os.path.join(ROOT, "docs", "results", f"{name}.md"),
               encoding="utf-8").read()
    assert f"results/{name}.md" in how, name
    assert f"../{name}.md" in res, name
    assert docs_tool.blocks(res), name
    assert len(how.splitlines()) < 150, name


def test_readme_house_lists_the_tree():
  text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
  house = text[text.index("<!-- house -->"):text.index("<!-- end house -->")]
  named = set(re.findall(r"^fser_jax/(\w+)/\s", house, re.M))
  on_disk = {d for d in os.listdir(os.path.join(ROOT, "fser_jax"))
             if os.path.isdir(os.path.join(ROOT, "fser_jax", d))
             and any(f.endswith(".py") for f in
                     os.listdir(os.path.join(ROOT, "fser_jax", d)))}
  assert named == on_disk, (named ^ on_disk)
  for mod in re.findall(r"^(fser_jax/[\w/]+\.py)", house, re.M):
    assert os.path.exists(os.path.join(ROOT, mod)), mod
  top = next(l for l in house.splitlines() if l.startswith("fser_jax/__init__.py"))
  assert re.findall(r"\b(\w+\.py)\b", top) == ["__init__.py", "config.py", "errors.py"]
  assert {f for f in os.listdir(os.path.join(ROOT, "fser_jax"))
          if f.endswith(".py")} == {"__init__.py", "config.py", "errors.py"}
