"""The docs' results, rendered from the committed JSON.

Every results table and every figure-bearing summary in README.md, docs/*.md
and docs/results/*.md sits between

  <!-- generated: NAME -->
  ...
  <!-- end generated -->

and NAME's renderer below writes what is between the markers from the JSON
under docs/results/ and benchmarks/results/. Nothing here is typed in: a
figure the JSON does not hold is not rendered.

  python -m fser_jax.tools.docs            # rewrite every stale block in place
  python -m fser_jax.tools.docs --check    # exit 1 naming the stale blocks
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import statistics
import sys
from collections import Counter
from typing import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

BLOCK = re.compile(
    r"(<!-- generated: ([\w./+-]+) -->\n)(.*?)(<!-- end generated -->)", re.S)

RENDERERS: dict[str, Callable[[str], str]] = {}
# Where each block's figures come from (repository-relative globs).
SOURCES: dict[str, list[str]] = {}


def block(name: str, *sources: str):
  def register(fn):
    RENDERERS[name] = fn
    SOURCES[name] = list(sources)
    return fn
  return register


def pages(root: str = ROOT) -> list[str]:
  """The Markdown pages that may hold generated blocks."""
  return ([os.path.join(root, "README.md")]
          + sorted(glob.glob(os.path.join(root, "docs", "*.md")))
          + sorted(glob.glob(os.path.join(root, "docs", "results", "*.md"))))


def load(root: str, rel: str) -> dict:
  with open(os.path.join(root, rel), encoding="utf-8") as f:
    return json.load(f)


def pct(x: float) -> str:
  return f"{100 * x:.1f}"


def signed(x: float) -> str:
  """Points, signed; a value that rounds to zero prints as 0.0."""
  s = f"{100 * x:+.1f}"
  return "0.0" if s in ("+0.0", "-0.0") else s


def span(values, fmt=signed, sep=" to ") -> str:
  lo, hi = min(values), max(values)
  return fmt(lo) if fmt(lo) == fmt(hi) else f"{fmt(lo)}{sep}{fmt(hi)}"


def table(header: list[str], rows: list[list[str]]) -> str:
  out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  out += ["| " + " | ".join(r) + " |" for r in rows]
  return "\n".join(out) + "\n"


# ---------------------------------------------------------------- the curve

SETS = [("greek_phone", "Greek"), ("spanish_mobile", "Spanish"),
        ("french_room", "French"), ("english_gsm", "English")]
LC = "docs/results/learning_curve"


def curve(root: str, kind: str, name: str) -> dict:
  return load(root, f"{LC}/{kind}_{name}.json")


def cell(d: dict, arm: str, k: int) -> dict:
  return next(c for c in d["arms"][arm] if c["shots"] == k)


def ua(d: dict, arm: str, k: int) -> float:
  return cell(d, arm, k)["ua_mean"]


def draws(arms: list[str]) -> str:
  n = Counter(arms)
  return ", ".join(a if c == 1 else f"{a} ×{c}"
                   for a, c in sorted(n.items(), key=lambda t: (-t[1], t[0])))


def chosen(c: dict) -> str:
  return f"{pct(c['test_ua'])} ± {pct(c['test_ua_std'])}"


def hindsight(c: dict) -> str:
  return f"{c['best_in_hindsight']['arm']} {pct(c['best_in_hindsight']['ua'])}"


def test_speaker(d: dict) -> str:
  m = re.search(r"\(([^)]*)\)\s*$", d["test_set"])
  return m.group(1) if m else d["test_set"]


def cells(root: str, kind: str):
  """(set, label, json, choice) for every cell of the four sets."""
  for name, label in SETS:
    d = curve(root, kind, name)
    for c in d["choice"]:
      yield name, label, d, c


@block("learning_curve/plus", f"{LC}/plus_*.json")
def _lc_plus(root):
  out = []
  for name, _ in SETS:
    d = curve(root, "plus", name)
    out.append(f"#### {name} (test: {d['test_clips']} clips of "
               f"{test_speaker(d)}; zero-shot {pct(d['arms']['zero_shot']['ua'])})\n")
    rows = []
    for c in d["choice"]:
      k = c["shots"]
      rows.append([str(k), draws(c["arms"]), chosen(c)]
                  + [pct(ua(d, a, k)) for a in
                     ("baseline", "baseline_speaker", "probe", "probe_speaker")]
                  + [hindsight(c)])
    out.append(table(["k", "chosen (draws)", "chosen UA", "baseline",
                      "baseline_speaker", "probe", "probe_speaker",
                      "best in hindsight"], rows))
  return "\n".join(out)


def margin(d: dict, c: dict) -> float:
  """The chosen arm's test UA over `baseline`'s, at the choice c's k."""
  return next(r for r in d["recommendation"]
              if r["shots"] == c["shots"])["margin_over_baseline"]


@block("learning_curve/plus_summary", f"{LC}/plus_*.json")
def _lc_plus_summary(root):
  cs = list(cells(root, "plus"))
  over = [margin(d, c) for _, _, d, c in cs]
  low = min(cs, key=lambda t: margin(t[2], t[3]))
  matched = [c["margin_over_matched_baseline"] for _, _, _, c in cs]
  below = sum(m < 0 for m in over)
  vs_bs = [(label, c["shots"], c["test_ua"] - ua(d, "baseline_speaker", c["shots"]))
           for _, label, d, c in cs]
  losses = [f"{l} k = {k} ({signed(v)})" for l, k, v in vs_bs if v < -0.0005]
  emb = [ua(d, "probe_speaker", c["shots"]) - ua(d, "baseline_speaker", c["shots"])
         for _, _, d, c in cs]
  gap = [c["best_in_hindsight"]["ua"] - c["test_ua"] for _, _, _, c in cs]
  worst = max(cs, key=lambda t: t[3]["best_in_hindsight"]["ua"] - t[3]["test_ua"])
  zs = [d["arms"]["zero_shot"]["ua"] for _, _, d, c in cs]
  spk = all(c["best_in_hindsight"]["arm"].endswith("_speaker") for *_, c in cs)
  en = curve(root, "plus", "english_gsm")
  ks = [c["shots"] for c in en["choice"]]
  lines = [
      f"- Over the {len(cs)} cells (4 sets x k), the arm chosen without the test "
      f"set is {'at or above' if below == 0 else f'below in {below} cells'} the "
      f"baseline: {span(over)} points (`margin_over_baseline`; smallest at "
      f"{low[1]} k = {low[3]['shots']}).",
      f"- Against the baseline as informed as each draw's chosen arm "
      f"(`margin_over_matched_baseline`): {span(matched)} points. Against "
      f"simply using `baseline_speaker` at every draw, the choice costs "
      f"points in {len(losses)} cells: {'; '.join(losses)}.",
      f"- The embedding on top of per-speaker statistics (`probe_speaker` "
      f"minus `baseline_speaker`): {span(emb)} points over the {len(emb)} cells "
      f"(median {signed(statistics.median(emb))}).",
      f"- English GSM, inductive arms: baseline "
      f"{span([ua(en, 'baseline', k) for k in ks], pct, '-')}, probe "
      f"{span([ua(en, 'probe', k) for k in ks], pct, '-')}; "
      f"`baseline_speaker` {span([ua(en, 'baseline_speaker', k) for k in ks], pct, '-')}.",
      f"- The best arm in hindsight is "
      f"{'always a `_speaker` arm' if spk else 'not always a `_speaker` arm'}; "
      f"the choice leaves {span(gap, pct)} points of it (median "
      f"{pct(statistics.median(gap))}; most at {worst[1]} k = {worst[3]['shots']}: "
      f"{chosen(worst[3])} against {hindsight(worst[3])}).",
      f"- Zero-shot (the source run as it is): {span(zs, pct, '-')} UA %.",
  ]
  return "\n".join(lines) + "\n"


ALL_ARMS_COLS = ("baseline", "baseline_speaker", "egemaps_speaker",
                 "probe_speaker", "encoder", "encoder_speaker",
                 "encoder+baseline_speaker")


@block("learning_curve/all_arms", f"{LC}/all_arms_*.json")
def _lc_all_arms(root):
  rows = []
  for name, _ in SETS:
    d = curve(root, "all_arms", name)
    for i, c in enumerate(d["choice"]):
      k = c["shots"]
      rows.append([name if i == 0 else "", str(k), draws(c["arms"]), chosen(c)]
                  + [pct(ua(d, a, k)) for a in ALL_ARMS_COLS] + [hindsight(c)])
  return table(["set", "k", "chosen (draws)", "chosen UA", *ALL_ARMS_COLS,
                "best in hindsight"], rows)


@block("learning_curve/all_arms_summary", f"{LC}/all_arms_*.json",
       f"{LC}/plus_*.json")
def _lc_all_arms_summary(root):
  cs = list(cells(root, "all_arms"))
  over = [(label, c["shots"], c["test_ua"] - ua(d, "baseline", c["shots"]))
          for _, label, d, c in cs]
  below = [f"{l} k = {k}: {signed(v)}" for l, k, v in over if v < -0.0005]
  vs6, lines = [], []
  for name, label in SETS:
    six = curve(root, "plus", name)
    for c in curve(root, "all_arms", name)["choice"]:
      c6 = next(x for x in six["choice"] if x["shots"] == c["shots"])
      vs6.append((label, c["shots"], c["test_ua"] - c6["test_ua"], c, c6))
  worst = min(vs6, key=lambda t: t[2])
  fr = curve(root, "all_arms", "french_room")
  k = worst[1]
  lines.append(
      f"- The chosen arm against `baseline`: {span([v for *_, v in over])} "
      f"points; below it in {len(below)} of {len(over)} cells"
      + (f" ({'; '.join(below)})" if below else "") + ".")
  lines.append(
      f"- Against the 6-arm choice on the same draws: {span([t[2] for t in vs6])} "
      f"points; the largest loss at {worst[0]} k = {k} ({pct(worst[3]['test_ua'])} "
      f"against {pct(worst[4]['test_ua'])})"
      + (f", {signed(worst[3]['test_ua'] - ua(fr, 'baseline_speaker', k))} points "
         f"against `baseline_speaker` there" if worst[0] == "French" else "") + ".")
  enc = [(label, c["shots"], c["best_in_hindsight"]) for _, label, d, c in cs
         if c["best_in_hindsight"]["arm"].startswith("encoder")]
  lines.append(
      "- An encoder arm is the best in hindsight in "
      f"{len(enc)} of {len(cs)} cells: "
      + "; ".join(f"{l} k = {k} ({b['arm']} {pct(b['ua'])})" for l, k, b in enc)
      + ".")
  drops = []
  for name, label in (("spanish_mobile", "Spanish"), ("english_gsm", "English")):
    d = curve(root, "all_arms", name)
    drops += [ua(d, "encoder_speaker", c["shots"]) - ua(d, "encoder", c["shots"])
              for c in d["choice"]]
  lines.append(
      f"- `encoder_speaker` over `encoder` on the codec sets (Spanish, English): "
      f"{span(drops)} points.")
  return "\n".join(lines) + "\n"


CNN = {"default": f"{LC}/cnn_spanish_mobile_default.json",
       "steps300": f"{LC}/cnn_spanish_mobile_steps300.json"}


@block("learning_curve/cnn", *CNN.values())
def _lc_cnn(root):
  rows = []
  for run, rel in CNN.items():
    d = load(root, rel)
    for arm in ("scratch", "finetune"):
      for c in d["arms"][arm]:
        steps = d["steps_per_cell"][str(c["shots"])]
        rows.append([arm, str(c["shots"]),
                     f"{steps} ({run})", f"{c['final_loss'][0]:.2f}",
                     pct(c["ua_mean"])])
  d = load(root, CNN["default"])
  for c in d["choice"]:
    k = c["shots"]
    rows.append(["`baseline` / `baseline_speaker` / `probe_speaker`, same draw",
                 str(k), "-", "-",
                 " / ".join(pct(ua(d, a, k)) for a in
                            ("baseline", "baseline_speaker", "probe_speaker"))])
  return table(["arm", "k", "budget (steps)", "final training loss",
                "test UA %"], rows)


def _cnn_gap(root) -> tuple[float, str]:
  """The smallest lead of `baseline_speaker` over a CNN arm, and where."""
  best = None
  for run, rel in CNN.items():
    d = load(root, rel)
    for arm in ("scratch", "finetune"):
      for c in d["arms"][arm]:
        g = ua(d, "baseline_speaker", c["shots"]) - c["ua_mean"]
        if best is None or g < best[0]:
          best = (g, f"{arm}, k = {c['shots']}, {d['steps_per_cell'][str(c['shots'])]} steps")
  return best


@block("learning_curve/cnn_summary", *CNN.values())
def _lc_cnn_summary(root):
  d = load(root, CNN["default"])
  ln = math.log(len(d["classes"]))
  losses = [c["final_loss"][0] for a in ("scratch", "finetune")
            for c in d["arms"][a]]
  d3 = load(root, CNN["steps300"])
  losses3 = [c["final_loss"][0] for a in ("scratch", "finetune")
             for c in d3["arms"][a]]
  ft = [load(root, r)["arms"]["finetune"][-1] for r in CNN.values()]
  gap, where = _cnn_gap(root)
  return (f"- Final training loss at the default budget: "
          f"{min(losses):.2f}-{max(losses):.2f}, "
          f"{100 * min(losses) / ln:.0f}-{100 * max(losses) / ln:.0f}% of "
          f"ln {len(d['classes'])} = {ln:.2f}; at 300 steps "
          f"{min(losses3):.2f}-{max(losses3):.2f}.\n"
          f"- Fine-tuning at k = {ft[0]['shots']}: {pct(ft[0]['ua_mean'])} -> "
          f"{pct(ft[1]['ua_mean'])} with 300 steps; no CNN cell comes within "
          f"{100 * gap:.1f} points of `baseline_speaker` on the same draw "
          f"(closest: {where}).\n")


# ------------------------------------------------------------- quick start

QS = {"defaults": "docs/results/quickstart/defaults_xeon-amx_2026-12-06.json",
      "avx2": "docs/results/quickstart/avx2_codegen_xeon-amx_2026-12-06.json"}


def _seeds(d: dict, key: str, fmt="{:.3f}") -> str:
  return "/".join(fmt.format(d["seeds"][s][key]) for s in sorted(d["seeds"]))


def _secs(d: dict) -> str:
  s = [d["seeds"][k]["seconds"] for k in d["seeds"]]
  return f"{min(s)}-{max(s)} s"


def _baselines(d: dict) -> str:
  b = sorted({round(v["baseline_unweighted_accuracy"], 3) for v in d["seeds"].values()})
  return "/".join(f"{x:.3f}" for x in b)


@block("quickstart", *QS.values())
def _quickstart(root):
  a, b = load(root, QS["defaults"]), load(root, QS["avx2"])
  return (f"Seeds {'/'.join(sorted(a['seeds']))}: test UA "
          f"{_seeds(a, 'test_unweighted_accuracy')} (linear baseline "
          f"{_baselines(a)}), {_secs(a)} a run, on a 2-core Intel Xeon with "
          f"AVX-512 and AMX (commit {a['commit'][:7]}, {a['date']}); on its AVX2 "
          f"code path {_seeds(b, 'test_unweighted_accuracy')} (baseline "
          f"{_baselines(b)}), {_secs(b)} (commit {b['commit'][:7]}).\n")


# ---------------------------------------------------------- performance

TS = "benchmarks/results/train_step_{}_xeon-amx_2026-12-06.json"


def _rate(r: dict) -> str:
  e = r["examples_per_sec"]
  return f"{e['median']:.1f} ({e['min']:.0f}-{e['max']:.0f})"


@block("performance/train_step", TS.format("float32"), TS.format("bfloat16"))
def _train_step(root):
  rows = []
  for p in ("float32", "bfloat16"):
    d = load(root, TS.format(p))
    base = d["jax"]["examples_per_sec"]["median"]
    rows.append([f"{p}, the default (`{d['conv_impl_resolved']}`, "
                 f"{d['dropout_bits']} dropout)", f"**{_rate(d['jax'])}**", ""])
    for name, r in d["jax_alternatives"].items():
      rows.append([f"{p}, `{name}` (packed dropout bits)", _rate(r),
                   f"x{base / r['examples_per_sec']['median']:.2f}"])
    for peer, label in (("keras", "Keras (oneDNN)"), ("torch", "PyTorch")):
      r = d[peer]
      rows.append([f"{p}, {label}", _rate(r),
                   f"**x{base / r['examples_per_sec']['median']:.2f}**"])
  return table(["step", "examples/s (min-max)", "the default against it"], rows)


@block("performance/train_step_summary", TS.format("float32"),
       TS.format("bfloat16"))
def _train_step_summary(root):
  parts = []
  for p in ("float32", "bfloat16"):
    d = load(root, TS.format(p))
    base = d["jax"]["examples_per_sec"]["median"]
    packed = d["jax_alternatives"]["auto+packed"]["examples_per_sec"]["median"]
    keras = d["keras"]["examples_per_sec"]["median"]
    parts.append(f"{p}: the bernoulli draw costs {100 * (1 - base / packed):.0f}% "
                 f"of the step (packed bits {packed / base:.2f}x the default, "
                 f"{packed / keras:.2f}x Keras; the default {base / keras:.2f}x Keras)")
  return "- " + ".\n- ".join(parts) + ".\n"


# ------------------------------------------------------------- encoders

ENC = "benchmarks/results/encoder_{}_base_xeon-amx_2026-12-06{}.json"


def _enc_runs(root, family):
  return [load(root, os.path.relpath(f, root)) for f in sorted(glob.glob(
      os.path.join(root, ENC.format(family, "*"))))]


def _rng(vals, fmt="{:.2f}", suffix="") -> str:
  lo, hi = fmt.format(min(vals)), fmt.format(max(vals))
  return f"{lo}{suffix}" if lo == hi else f"{lo}-{hi}{suffix}"


@block("encoders/speed", ENC.format("*", "*"))
def _enc_speed(root):
  w = _enc_runs(root, "whisper")[0]
  rows = [["whisper-base, 4 x 30 s padded",
           f"{w['ours_float32_30s']['seconds_per_batch']:.2f}",
           f"{w['transformers_float32_30s']['seconds_per_batch']:.2f}",
           f"**{w['ratio_float32_ours_over_transformers']:.2f}x**", "",
           f"{w['ratio_bfloat16_ours_over_transformers']:.2f}x"],
          ["whisper-base, 4 x 3 s at their length (how the curve runs)",
           f"{w['ours_float32_3s_unpadded']['seconds_per_batch']:.3f} "
           f"({w['ours_float32_3s_unpadded']['clips_per_s']:.0f} clips/s)",
           "(pads to 30 s)", "", "", ""]]
  for fam, label in (("wav2vec2", "wav2vec2-base"), ("wavlm", "WavLM-base")):
    rs = _enc_runs(root, fam)
    rows.append([
        f"{label}, 4 x {rs[0]['seconds_per_clip']:.0f} s, {len(rs)} runs",
        _rng([r["ours_float32"]["seconds_per_batch"] for r in rs]),
        _rng([r["transformers_float32"]["seconds_per_batch"] for r in rs]),
        f"**{_rng([r['ratio_float32_ours_over_transformers'] for r in rs], suffix='x')}**",
        _rng([r["ratio_float32_pooled_ours_over_transformers"] for r in rs], suffix="x"),
        _rng([r["ratio_bfloat16_ours_over_transformers"] for r in rs], suffix="x")])
  return table(["model, input", "fser_jax float32 (s per batch)",
                "transformers float32", "ratio", "pooled ratio",
                "bfloat16 ratio"], rows)


def _f32_ratios(root) -> list[float]:
  out = []
  for fam in ("whisper", "wav2vec2", "wavlm"):
    for r in _enc_runs(root, fam):
      out.append(r["ratio_float32_ours_over_transformers"])
      if "ratio_float32_pooled_ours_over_transformers" in r:
        out.append(r["ratio_float32_pooled_ours_over_transformers"])
  return out


@block("encoders/speed_summary", ENC.format("*", "*"))
def _enc_speed_summary(root):
  rss = [r["peak_rss_gb"] for fam in ("whisper", "wav2vec2", "wavlm")
         for r in _enc_runs(root, fam)]
  return (f"float32 speed against transformers over every committed run "
          f"(direct and pooled): {_rng(_f32_ratios(root), suffix='x')}; peak "
          f"RSS of a benchmark process {_rng(rss, '{:.1f}')} GB.\n")


@block("readme/encoder_speed", ENC.format("*", "*"))
def _readme_encoder_speed(root):
  return (f"On a 2-core Xeon with AVX-512 and AMX, fser_jax runs them at "
          f"{_rng(_f32_ratios(root), suffix='x')} transformers' float32 speed "
          f"([results](docs/results/encoders.md)).\n")


PARITY = "benchmarks/results/whisper_base_parity_ct2_xeon-amx_2026-12-06.json"


@block("encoders/parity_ct2", PARITY)
def _parity(root):
  d = load(root, PARITY)
  return (f"Against CTranslate2 {d['ctranslate2']} on OpenAI's whisper-base "
          f"({d['clip_seconds']:.0f} s of audio padded to 30 s, float32): final "
          f"encoder states differ by at most "
          f"**{d['encoder_max_abs_diff_vs_ctranslate2']:.1e}** on values up to "
          f"{d['encoder_output_abs_max']:.0f} in magnitude; the log-mel "
          f"front-end differs from transformers' by "
          f"{d['logmel_max_abs_diff_vs_transformers']:.1e}. The same clip at its "
          f"own length against the padded form: mean cosine "
          f"{d['short_vs_padded_mean_cosine']:.2f} over its "
          f"{d['short_vs_padded_frames']} positions, largest difference "
          f"{d['short_vs_padded_max_abs_diff']:.0f}.\n")


EH = "docs/results/encoder_head"


@block("encoders/head", f"{EH}/*.json")
def _enc_head(root):
  rows = []
  for name, _ in SETS:
    d = load(root, f"{EH}/{name}.json")
    h, b = d["unweighted_accuracy"], d["baseline"]["unweighted_accuracy"]
    bold = lambda x, y: f"**{pct(x)}**" if pct(x) > pct(y) else pct(x)
    rows.append([name, f"{d['n_train']} / {d['n_validation']} / {d['n_test']}",
                 bold(h, b), bold(b, h),
                 f"{d['head']['layer']}, {d['head']['C']:g} ({d['head']['cv']})",
                 f"{100 * d['familiarity']['test_unfamiliar_fraction']:.0f}%"])
  return table(["set", "train / val / test clips", "head UA",
                "baseline UA (per speaker)", "state chosen, C (CV)",
                "test clips flagged unfamiliar"], rows)


@block("encoders/head_robustness", f"{EH}/greek_phone_robustness.json")
def _enc_head_rob(root):
  d = load(root, f"{EH}/greek_phone_robustness.json")
  parts = []
  for c in d["conditions"]:
    s = f"{c['name']} {pct(c['ua'])}"
    if c["name"] != "clean":
      s += f" ({signed(-c['drop_ua'])}"
      s += (f", flag AUROC {c['flag_auroc']:.2f})" if c["flag_auroc"] is not None
            else ")")
    parts.append(s)
  return (f"`--mode robustness` on the greek_phone head ({d['n_clips']} clips), "
          f"UA %: " + "; ".join(parts) + ".\n")


# ------------------------------------------------------------ robustness

ROB = "docs/results/robustness/fser_robust_seed{}_xeon-amx_2026-12-06.json"


def _conds(root, seed) -> dict:
  return {c["name"]: c for c in load(root, ROB.format(seed))["conditions"]}


@block("robustness/fser_robust", ROB.format("*"))
def _rob(root):
  seeds = (0, 1)
  cs = [_conds(root, s) for s in seeds]
  rows = []
  for name in cs[0]:
    rows.append([name] + [
        f"{pct(c[name]['ua'])}" + ("" if name == "clean" else
                                   f" ({signed(-c[name]['drop_ua'])})")
        + f", {100 * c[name]['unfamiliar']:.0f}%" for c in cs])
  return table(["condition: UA % (drop vs clean), flagged unfamiliar",
                *[f"seed {s}" for s in seeds]], rows)


@block("robustness/fser_robust_summary", ROB.format("*"), QS["defaults"])
def _rob_summary(root):
  qs = load(root, QS["defaults"])
  out = []
  for s in (0, 1):
    c = _conds(root, s)
    worst = max(d["drop_ua"] for n, d in c.items() if n in ("snr_10", "phone"))
    clean_gap = qs["seeds"][str(s)]["test_unweighted_accuracy"] - c["clean"]["ua"]
    met = worst <= 0.05 + 1e-9 and clean_gap <= 0.02 + 1e-9
    out.append(f"seed {s}: 10 dB SNR {signed(-c['snr_10']['drop_ua'])}, phone "
               f"{signed(-c['phone']['drop_ua'])}, clean {pct(c['clean']['ua'])} "
               f"against fser_fast's {pct(qs['seeds'][str(s)]['test_unweighted_accuracy'])} "
               f"(same seed, same CPU): goal {'met' if met else 'missed'}")
  return "- " + ";\n- ".join(out) + ".\n"


# ------------------------------------------- the choice's policy at small k

CP = "docs/results/curve_policies"
POLICY_NAMES = {
    "legacy": "settings searched, ties to `baseline` first (before)",
    "search": "settings searched, ties to the per-speaker family",
    "fixed": "settings fixed, ties to the per-speaker family",
    "fixed_choose_from_20": "settings fixed; below k = 20 the default arm",
    "fixed_choose_from_50": "settings fixed; below k = 50 the default arm",
    "default_below_20_then_search": "below k = 20 the default arm; from 20 "
                                    "settings searched, the arm chosen "
                                    "(added after two sets' results)",
}


def _cp(root) -> dict:
  return load(root, f"{CP}/summary.json")


@block("curve_policies/summary", f"{CP}/summary.json")
def _cp_summary(root):
  d = _cp(root)
  rows = []
  for name, v in d["policies"].items():
    rows.append([f"`{name}`", POLICY_NAMES.get(name, name),
                 signed(v["mean_vs_reference"]),
                 signed(v["min_vs_reference"]), signed(v["mean_regret"]),
                 "-" if v["mean_cv_gap"] is None else signed(v["mean_cv_gap"]),
                 "-" if v["mean_abs_cv_gap"] is None else
                 pct(v["mean_abs_cv_gap"])])
  n = len(next(iter(d["policies"].values()))["cells"])
  return (table(["policy", "what", "mean vs reference", "worst (set, k) vs "
                 "reference", "mean regret vs best fixed policy",
                 "mean nested CV - test", "mean abs gap"], rows)
          + f"\nPoints of UA over {n} cells ({len(d['sets'])} sets: "
          f"{', '.join(d['sets'])}; k = 5, 10, 20, 50), {d['draws']} draws "
          f"each; {d['cpu']}. By the rule: `{d['verdict']['policy']}` "
          f"({d['verdict']['why']}).\n" + _held_out(d))


def _held_out(d) -> str:
  v = d["policies"][d["verdict"]["policy"]]
  h = v.get("held_out")
  if not h:
    return ""
  return (f"\nOn the set held out from the rule's making "
          f"({', '.join(h['sets'])}): {signed(h['mean_vs_reference'])} against "
          f"the reference on average (worst k {signed(h['min_vs_reference'])}), "
          f"{signed(h['mean_regret'])} against the best fixed policy. The "
          f"nested estimate exists for {v['cv_gap_cells']} of "
          f"{len(v['cells'])} cells.\n")


@block("curve_policies/cells", f"{CP}/summary.json")
def _cp_cells(root):
  d = _cp(root)
  pol = d["policies"]
  rows = []
  for i, c in enumerate(pol[d["verdict"]["policy"]]["cells"]):
    rows.append([c["set"], str(c["shots"]),
                 f"{pct(c['ua'])} ± {pct(c['ua_sd'])}",
                 pct(pol["legacy"]["cells"][i]["ua"]),
                 pct(c["reference"]), pct(c["best_fixed_policy"]),
                 signed(c["vs_reference"]), signed(c["regret"]),
                 "-" if c["cv_gap"] is None else signed(c["cv_gap"])])
  return table(["set", "k", "chosen (default policy)", "chosen (legacy)",
                "fixed reference", "best fixed policy", "vs reference",
                "regret", "nested CV - test"], rows)


@block("readme/curve_policy", f"{CP}/summary.json")
def _readme_curve_policy(root):
  d = _cp(root)
  name = d["verdict"]["policy"]
  v = d["policies"][name]
  n = len(v["cells"])
  return (f"the default (`{name}`) is {signed(v['mean_vs_reference'])} points "
          f"on average against a fixed per-speaker logistic regression on "
          f"plain statistics (worst cell {signed(v['min_vs_reference'])}), "
          f"{signed(v['mean_regret'])} against the best fixed policy, its "
          f"nested estimate {signed(v['mean_cv_gap'])} from its test UA "
          f"({n} cells, {d['draws']} draws each: "
          "[docs/results/curve_policies.md](docs/results/curve_policies.md)).\n")


# ----------------------------------------------------------- the engine

def render(name: str, root: str = ROOT) -> str:
  return RENDERERS[name](root)


def blocks(text: str) -> list[tuple[str, str]]:
  """(name, content) of every generated block in a page."""
  return [(m.group(2), m.group(3)) for m in BLOCK.finditer(text)]


def refresh(text: str, root: str = ROOT) -> str:
  def sub(m):
    return m.group(1) + render(m.group(2), root) + m.group(4)
  return BLOCK.sub(sub, text)


def stale(root: str = ROOT) -> list[str]:
  """'page: NAME' for every block whose content differs from its rendering
  (or whose NAME has no renderer)."""
  out = []
  for p in pages(root):
    text = open(p, encoding="utf-8").read()
    for name, content in blocks(text):
      rel = os.path.relpath(p, root)
      if name not in RENDERERS:
        out.append(f"{rel}: {name} (no renderer)")
      elif content != render(name, root):
        out.append(f"{rel}: {name}")
  return out


def main(argv: list[str]) -> int:
  if "--check" in argv:
    bad = stale()
    for b in bad:
      print(f"stale: {b}")
    return 1 if bad else 0
  for p in pages():
    text = open(p, encoding="utf-8").read()
    new = refresh(text)
    if new != text:
      with open(p, "w", encoding="utf-8") as f:
        f.write(new)
      print(f"rewrote {os.path.relpath(p, ROOT)}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
