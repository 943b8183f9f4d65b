"""Training past memory: a generated corpus of ~30,000 clips, streamed.

  python benchmarks/scale.py build --utterances 313 --data_dir D \
      [--beam_options direct_num_workers=2,direct_running_mode=multi_processing]
  python benchmarks/scale.py train --utterances 313 --data_dir D \
      --stream on --steps 200 --json OUT.json
  python benchmarks/scale.py train --utterances 8 --data_dir D2 \
      --stream off|on --steps 200 --json OUT.json

`build` writes the embedded synthetic corpus with `--utterances` clips per
speaker and emotion (12 speakers x 8 emotions: 313 -> 30,048 clips of 1-4 s)
as ArrayRecord files. `train` runs configs/fser_robust.py's waveform
augmentation on it (the fast recipe's CNN, batch 64) for `--steps` steps in
this process and prints the train rate (examples/s after the first
dispatch), the wall time of loading, and the process' peak RSS
(ru_maxrss: everything the process ever held, TensorFlow and XLA
included). Each mode runs in its own process so peaks do not mix.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import common


def builder(utterances: int, data_dir: str):
  from fser_jax import datasets
  cfg = datasets.FserConfig(
      name=f"synthetic_u{utterances}", fser_labels=True,
      synthetic_utterances=utterances,
      description=f"synthetic corpus, {utterances} clips per speaker/emotion")
  return datasets.Fser(config=cfg, data_dir=data_dir)


def config(utterances: int, data_dir: str, stream: str, steps: int):
  c = common.recipe("fser_robust")
  c.data.dataset = f"fser/synthetic_u{utterances}"
  c.data.data_dir = data_dir
  c.data.stream = stream
  c.data.protocol = "speaker"
  c.train.num_steps = steps
  c.train.eval_every_epochs = 1000  # timing the steps, not validation
  c.train.checkpoint_every_epochs = 1000
  c.baseline = False
  return c


def peak_rss_gb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def main(argv=None) -> dict:
  p = argparse.ArgumentParser()
  p.add_argument("what", choices=("build", "train"))
  p.add_argument("--utterances", type=int, default=313)
  p.add_argument("--data_dir", required=True)
  p.add_argument("--beam_options", default="")
  p.add_argument("--stream", default="on", choices=("on", "off"))
  p.add_argument("--steps", type=int, default=200)
  p.add_argument("--json", default=None)
  a = p.parse_args(argv)
  out = {"device": common.device_name(), "utterances": a.utterances}
  b = builder(a.utterances, a.data_dir)
  if a.what == "build":
    import tensorflow_datasets as tfds
    from fser_jax.data import input_pipeline
    from fser_jax.data import dataset_io
    t0 = time.perf_counter()
    b.download_and_prepare(
        file_format="array_record",
        download_config=tfds.download.DownloadConfig(
            beam_options=dataset_io.beam_options(a.beam_options)))
    out.update(what="build", seconds=time.perf_counter() - t0,
               clips=b.info.splits["train"].num_examples,
               bytes=b.info.splits["train"].num_bytes,
               beam_options=a.beam_options)
  else:
    import tempfile
    from fser_jax.data import input_pipeline
    from fser_jax.train import loop as train
    from fser_jax.data import dataset_io
    c = config(a.utterances, a.data_dir, a.stream, a.steps)
    t0 = time.perf_counter()
    # The builder above is not registered under fser/: load through it.
    dataset_io.get_builder = lambda d: b
    data = input_pipeline.load(c, progress=False)
    load_s = time.perf_counter() - t0
    rss_load = peak_rss_gb()
    with tempfile.TemporaryDirectory() as wd:
      t0 = time.perf_counter()
      res = train.fit(c, data, wd)
      fit_s = time.perf_counter() - t0
    rates = [h["examples_per_sec"] for h in res.history
             if "examples_per_sec" in h][1:]  # the first holds the compile
    rates.sort()
    out.update(what="train", stream=a.stream, clips=int(data.labels.size),
               train_clips=int((data.split == "train").sum()),
               pad_to=int(data.pad_to or (data.wav.shape[1]
                                          if data.wav is not None else 0)),
               load_seconds=load_s, fit_seconds=fit_s, steps=a.steps,
               examples_per_sec_median=rates[len(rates) // 2] if rates else 0,
               peak_rss_gb_after_load=rss_load, peak_rss_gb=peak_rss_gb())
  print(json.dumps(out, indent=2))
  if a.json:
    with open(a.json, "w") as f:
      json.dump(out, f, indent=2)
  return out


if __name__ == "__main__":
  main()
