"""Runs every benchmark and prints one table.

  python benchmarks/run.py [--out_dir DIR] [--precision float32|bfloat16]
"""

from __future__ import annotations

import argparse
import json
import os

import common


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--out_dir", default="benchmark_results")
  p.add_argument("--precision", default="float32")
  p.add_argument("--sweep", default="32,64,128,256,512,1024")
  a = p.parse_args()
  os.makedirs(a.out_dir, exist_ok=True)
  import augmentation
  import epoch
  import frontend
  import predict
  import train_step
  import wave_augment
  j = lambda name: os.path.join(a.out_dir, name)
  ts = train_step.main(["--precision", a.precision, "--json", j("train_step.json")])
  fe = frontend.main(["--json", j("frontend.json")])
  au = augmentation.main(["--json", j("augmentation.json")])
  ep = epoch.main(["--json", j("epoch.json")])
  sw = epoch.main(["--sweep", a.sweep, "--json", j("sweep.json")])
  p2 = predict.run(None, ["--files", "200", "--seconds", "2", "--legacy_files",
                     "50", "--json", j("predict_2s.json")])
  p60 = predict.run(None, ["--files", "10", "--seconds", "60", "--json",
                      j("predict_60s.json")])
  wa = wave_augment.main(["--json", j("wave_augment.json")])
  jx = ts["jax"]
  we = wa["examples_per_sec"]
  rows = [
      ("device", ts["device"], ""),
      (f"train step, batch 64, {a.precision}",
       f"{jx['examples_per_sec']['median']:.0f} ex/s "
       f"({jx['examples_per_sec']['min']:.0f}-{jx['examples_per_sec']['max']:.0f})",
       f"Keras {ts['keras']['examples_per_sec']['median']:.0f} ex/s, "
       f"x{ts['speedup_vs_keras']:.2f}"),
      ("FLOPs per step / achieved / peak",
       f"{jx['flops_per_step'] / 1e9:.1f} GFLOP / "
       f"{jx['achieved_flops_per_sec'] / 1e9:.0f} GFLOP/s / "
       f"{jx['peak_flops_per_sec'] / 1e9:.0f} GFLOP/s",
       f"utilisation {100 * jx['utilization']:.0f}%"),
      ("mel front-end (3.5 s clips)",
       f"{fe['jax_clips_per_sec']['median']:.0f} clips/s",
       f"librosa {fe['librosa_clips_per_sec']['median']:.0f} clips/s, "
       f"x{fe['speedup_vs_librosa']:.1f}"),
      ("augmentation", f"{au['jax_images_per_sec']['median']:.0f} images/s",
       (f"Keras ImageDataGenerator {au['keras_images_per_sec']['median']:.0f} "
        f"images/s, x{au['speedup_vs_keras']:.1f}")
       if au.get("keras_images_per_sec") else au.get("keras_error", "")),
      ("epoch of 2048 (32 steps)",
       f"{ep['epoch']['epoch_seconds']:.2f} s",
       f"steps x step time {ep['epoch']['steps_x_step_seconds']:.2f} s, "
       f"overhead {100 * ep['epoch']['overhead']:+.1f}%"),
  ]
  rows.append(("waveform augmentation + front-end (4.2 s buffer)",
               f"{we['chain + front-end']['median']:.0f} ex/s",
               f"train step on images {we['train step (images)']['median']:.0f}"
               " ex/s, side by side"))
  for p_ in (p2, p60):
    rows.append((f"predict, {p_['seconds_per_file']:.0f} s files",
                 f"{p_['fser_jax_files_per_sec']:.1f} files/s",
                 f"old per-file loop {p_['legacy_files_per_sec']:.1f} files/s, "
                 f"x{p_['speedup']:.1f}"))
  for b, r in sw["batch_sweep_examples_per_sec"].items():
    rows.append((f"batch {b}", f"{r['median']:.0f} ex/s", ""))
  w = max(len(r[0]) for r in rows)
  print()
  print(f"| {'benchmark':<{w}} | result | comparison |")
  print(f"|{'-' * (w + 2)}|---|---|")
  for r in rows:
    print(f"| {r[0]:<{w}} | {r[1]} | {r[2]} |")
  with open(j("summary.json"), "w") as f:
    json.dump({"rows": rows}, f, indent=2)


if __name__ == "__main__":
  main()
