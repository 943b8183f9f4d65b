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
  n_spk = out.get("train_speakers", 0)
  if n_spk == 1:
    lines += ["**One speaker to train on**: the cross-validation splits that "
              "speaker's own clips, so nothing below says how another voice "
              "is handled; label clips of more speakers before trusting the "
              "choice.", ""]
  elif n_spk == 2:
    lines += ["**Two speakers to train on**: each fold of the "
              "cross-validation holds one of them out, so the choice below "
              "rests on two voices; label clips of more speakers before "
              "trusting it.", ""]
  if out.get("init_from") and out.get("source_overlap") is None:
    lines += [f"The source run `{out['init_from']}` has no splits.csv: whether "
              "it trained on the test speaker is not checked.", ""]
  if out.get("source_overlap"):
    lines += [f"**The source run `{out['init_from']}` trained on the test "
              f"set's {', '.join(out['source_overlap'][:5])}** "
              "(learning_curve.allow_source_overlap): the arms that read it "
              "are scored on voices or clips it has learned.", ""]
  if choice:
    lines += [f"Chosen without the test set: {choice[0]['how']}."
              + (" Ties within one standard error go to the first candidate "
                 "(`baseline_speaker` where every speaker's clips are there)."
                 if out.get("choice_rule", "one_se") == "one_se" else ""), ""]
  lines += [r["text"] for r in out.get("recommendation", [])]
  if choice:
    p = lambda v: metrics_lib.pct(v, 1)
    lines += ["", "| clips per class | chosen arm (draws) | CV UA % (nested) "
              "| test UA % | always baseline_speaker | always probe_speaker "
              "| fixed reference | best in hindsight (not chosen by the "
              "test) |", "|---|---|---|---|---|---|---|---|"]
    for c in choice:
      k = "all" if c["shots"] < 0 else str(c["shots"])
      picks = ", ".join(f"{a} x{c['arms'].count(a)}"
                        for a in dict.fromkeys(c["arms"]))
      best = c["best_in_hindsight"]
      pol = c["fixed_policies"]
      lines.append(
          f"| {k} | {picks} | {p(c['cv_ua'])} | {p(c['test_ua'])} ± "
          f"{p(c['test_ua_std'])} | {p(pol.get('baseline_speaker'))} | "
          f"{p(pol.get('probe_speaker'))} | {p(c.get('reference_speaker'))} "
          f"| {best['arm']} {p(best['ua'])} |")
    gaps = [c["cv_gap"] for c in choice if c.get("cv_gap") is not None]
    if gaps:
      lines += ["", f"The nested CV estimate minus the test UA, mean over k: "
                f"{100 * sum(gaps) / len(gaps):+.1f} points (the chosen "
                "arm's own CV UA, the best of what was tried on its folds, "
                "is optimistic and not shown as the estimate). The fixed "
                "reference: a logistic regression at fixed settings on the "
                "compact per-clip statistics standardised per speaker."]
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
  by_reason = {}
  for a, why in out.get("transductive", {}).items():
    if arms.get(a):
      by_reason.setdefault(why, []).append(f"`{a}`")
  if by_reason:
    lines += ["Transductive arms (they read the test speaker's unlabelled "
              "audio, as a user who has it can): "
              + "; ".join(f"{', '.join(a)} ({why})"
                          for why, a in by_reason.items()) + ".", ""]
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
