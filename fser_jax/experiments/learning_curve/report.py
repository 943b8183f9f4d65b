"""The learning curve's report as Markdown (learning_curve.md)."""

from __future__ import annotations

from fser_jax.evaluation import metrics as metrics_lib


def _cell(row: dict) -> str:
  if row["ua_mean"] is None:
    return "diverged"
  text = f"{100 * row['ua_mean']:.1f} ± {100 * row['ua_std']:.1f}"
  if row.get("not_learned"):
    text += f" ({row['not_learned']} not learned)"
  return text + (f" ({row['diverged']} diverged)" if row.get("diverged")
                 else "")


def to_markdown(out: dict, rows, cnn_arms, not_learned: float) -> str:
  """learning_curve.json as Markdown: the choice per k beside the baseline
  and the best arm in hindsight, then every arm's test UA (`rows`: the
  arms in order; `cnn_arms` and `not_learned`: the trained cells and their
  final-loss bar)."""
  arms = out["arms"]
  z = arms.get("zero_shot")
  lines = [f"# Learning curve: `{out['dataset']}`", ""]
  first = metrics_lib.dominant_line((z or {}).get("degenerate"))
  if first:
    lines += [first, ""]
  choice = out.get("choice", [])
  if 0 < out.get("train_speakers", 0) < 3:
    lines += [f"**Only {out['train_speakers']} speaker(s) to train on**: the "
              "cross-validation holds out one of them, so the choice below "
              "rests on one or two voices; label clips of more speakers "
              "before trusting it.", ""]
  if choice:
    lines += [f"Chosen without the test set: {choice[0]['how']}; ties within "
              "one standard error go to the simpler arm (baseline first)."
              if out.get("choice_rule", "one_se") == "one_se" else
              f"Chosen without the test set: {choice[0]['how']}.", ""]
  lines += [r["text"] for r in out.get("recommendation", [])]
  if choice:
    lines += ["", "| clips per class | chosen arm (draws) | its CV UA % | its "
              "test UA % | baseline test UA % | best in hindsight (not "
              "chosen by the test) |", "|---|---|---|---|---|---|"]
    base = {r["shots"]: r for r in arms.get("baseline") or []}
    for c in choice:
      k = "all" if c["shots"] < 0 else str(c["shots"])
      b = base.get(c["shots"])
      picks = ", ".join(f"{a} x{c['arms'].count(a)}"
                        for a in dict.fromkeys(c["arms"]))
      best = c["best_in_hindsight"]
      lines.append(
          f"| {k} | {picks} | {metrics_lib.pct(c['cv_ua'], 1)} | {metrics_lib.pct(c['test_ua'], 1)} ± "
          f"{metrics_lib.pct(c['test_ua_std'], 1)} | {_cell(b) if b else '-'} | "
          f"{best['arm']} {metrics_lib.pct(best['ua'], 1)} |")
  steps = ", ".join(f"{s} (k={k})" for k, s in out["steps_per_cell"].items())
  lines += ["", f"Test set: {out['test_clips']} clips, {out['test_set']}; "
            f"fixed for every cell. {out['repeats']} draws per k (nested); "
            "mean ± sample standard deviation of UA % over the draws."
            + (f" CNN cells train {steps} steps." if any(
                arms.get(a) for a in cnn_arms) else ""), ""]
  if z:
    lines += [f"Zero-shot (`{out['init_from']}` as it is, through the label "
              f"map, over the mapped classes {', '.join(z['mapped_classes'])}; "
              f"{z['n_mapped']} of {out['test_clips']} test clips): UA "
              f"{100 * z['ua']:.1f}%, accuracy {100 * z['acc']:.1f}%.", ""]
  for arm, why in out["skipped"].items():
    lines += [f"Skipped `{arm}`: {why}.", ""]
  have = [a for a in rows if arms.get(a)]
  lines += ["Every arm's test UA % (for reading, not used for the choice; "
            "`_speaker`: standardised per speaker with each speaker's own "
            "unlabelled clips, the test speaker's included; CNN arms are "
            "never chosen):", "",
            "| clips per class | train clips | "
            + " | ".join(have) + " |", "|---|---|" + "---|" * len(have)]
  n = max(len(arms[a]) for a in have) if have else 0
  for i in range(n):
    row = arms[have[0]][i]
    k = "all" if row["shots"] < 0 else str(row["shots"])
    lines.append(f"| {k} | {row['n_train']} | "
                 + " | ".join(_cell(arms[a][i]) for a in have) + " |")
  if any(arms.get(a) for a in cnn_arms):
    lines += ["", "CNN cells: \"not learned\" counts cells whose final "
              f"training loss stayed above {not_learned:.0%} of ln(classes): "
              "they learned nothing from their clips."]
  return "\n".join(lines) + "\n"
