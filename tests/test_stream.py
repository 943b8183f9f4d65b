"""Streamed training input (fser_jax/data/stream.py): the step gets the numbers
the in-memory path gives it, a killed run resumes exactly, the report is the
same, and what the loader holds does not grow with the training set."""

import os
import time
import tracemalloc

import jax
import numpy as np
import pytest

from conftest import tiny_config
from fser_jax.data import input_pipeline
from fser_jax.runs import cnn
from fser_jax.data import stream
from fser_jax.train import loop as train
from fser_jax.data import dataset_io
from fser_jax.data import stream as stream_lib
from fser_jax.errors import DataError
from test_reliability import _Killed, _kill_at

WAVE = {"augment.wave.noise_prob": 0.5, "augment.wave.gain_prob": 0.5,
        "augment.wave.speed_prob": 0.5}


def cfg(data_dir, **kw):
  return tiny_config(data_dir, **{"train.num_epochs": 2, **kw})


def leaves_equal(a, b):
  """Same tree structure, every leaf bitwise equal."""
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_streamed_training_is_the_in_memory_training(ar_dir, tfds_dir,
                                                    tmp_path):
  """Same seed, waveform augmentation on: streamed and in-memory feed the
  step the same clips, padding, lengths and standardisation, so the final
  parameters are bitwise equal; the in-memory path reads the ArrayRecord
  build as it reads the TFRecord one."""
  mem = input_pipeline.load(cfg(ar_dir, **WAVE, **{"data.stream": "off"}),
                            progress=False)
  tfr = input_pipeline.load(cfg(tfds_dir, **WAVE, **{"data.stream": "off"}),
                            progress=False)
  np.testing.assert_array_equal(mem.images, tfr.images)
  np.testing.assert_array_equal(mem.wav, tfr.wav)
  c = cfg(ar_dir, **WAVE, **{"data.stream": "on"})
  st = input_pipeline.load(c, progress=False, norm=mem.norm)
  assert st.streamed and not mem.streamed
  assert st.pad_to == mem.wav.shape[1]
  np.testing.assert_array_equal(st.split, mem.split)
  np.testing.assert_array_equal(st.meta["filename"], mem.meta["filename"])
  # Held: validation and test images only, equal to the in-memory ones.
  rows = st.rows()
  assert rows.size == np.sum(mem.split != "train") < mem.labels.size
  np.testing.assert_allclose(st.images, mem.images[rows], rtol=0, atol=1e-5)
  a = train.fit(cfg(ar_dir, **WAVE, **{"data.stream": "off"}), mem,
                str(tmp_path / "mem"))
  b = train.fit(c, st, str(tmp_path / "st"))
  leaves_equal(a.final_state, b.final_state)
  assert [h["train_loss"] for h in a.history if "train_loss" in h] == \
      [h["train_loss"] for h in b.history if "train_loss" in h]


def test_streamed_norm_from_sums_matches_the_images(ar_dir):
  """The training split's statistics from the index pass's per-clip sums
  equal those of the in-memory images (float64 sums, not bitwise)."""
  mem = input_pipeline.load(cfg(ar_dir, **{"data.stream": "off"}),
                            progress=False)
  st = input_pipeline.load(cfg(ar_dir, **{"data.stream": "on"}),
                           progress=False)
  np.testing.assert_allclose(st.norm[0], mem.norm[0], rtol=1e-5)
  np.testing.assert_allclose(st.norm[1], mem.norm[1], rtol=1e-5)
  spk = lambda s: input_pipeline.load(
      cfg(ar_dir, **{"data.stream": s, "features.normalize": "speaker"}),
      progress=False).clip_norm
  np.testing.assert_allclose(spk("on"), spk("off"), rtol=1e-4)


def test_streamed_run_killed_resumes_exactly(ar_dir, tmp_path, monkeypatch):
  c = cfg(ar_dir, **WAVE, **{"data.stream": "on", "train.num_epochs": 3,
                              "train.steps_per_dispatch": 2})
  data = input_pipeline.load(c, progress=False)  # 6 steps an epoch
  ref = train.fit(c, data, str(tmp_path / "ref"))
  workdir = str(tmp_path / "killed")
  for step in (4, 10):
    with monkeypatch.context() as m:
      _kill_at(m, step)
      with pytest.raises(_Killed):
        train.fit(c, data, workdir)
  out = train.fit(c, data, workdir)
  assert int(out.final_state["step"]) == 18
  leaves_equal(out.final_state, ref.final_state)


def test_streamed_report_equals_the_in_memory_report(ar_dir, tmp_path):
  """A whole run, streamed and in memory with the same statistics: the
  same report.json (the report reads the clips by position, in chunks)."""
  import json
  from fser_jax.runs import trained as inference
  base = {**WAVE, "train.num_epochs": 1}
  mem = cnn.run(cfg(ar_dir, **base, **{"data.stream": "off"}),
                               str(tmp_path / "mem"))
  st = cnn.run(cfg(ar_dir, **base, **{"data.stream": "on"}),
                              str(tmp_path / "st"))
  for k in ("accuracy", "unweighted_accuracy", "n_test", "n_train"):
    assert st[k] == pytest.approx(mem[k], abs=1e-6), k
  # Chunked windows (streamed splits larger than a chunk) equal one pass.
  r = inference.TrainedRun(str(tmp_path / "st"), trust=False)
  data = input_pipeline.load(cfg(ar_dir, **base, **{"data.stream": "on"}),
                             progress=False)
  idx = np.flatnonzero(data.split == "train")
  whole = r.window_outputs(data.source.read(idx))
  for groups in (None, [str(s) for s in data.meta["speaker"][idx]]):
    parts = r.window_outputs_read(data.source.read, idx, groups=groups,
                                  chunk=7)
    ref = whole if groups is None else r.window_outputs(
        data.source.read(idx), groups)
    np.testing.assert_array_equal(parts.bounds, ref.bounds)
    np.testing.assert_allclose(parts.logits, ref.logits, atol=1e-5)
  assert json.load(open(tmp_path / "st" / "report.json"))["n_test"] == \
      mem["n_test"]


def test_what_the_stream_holds_does_not_grow_with_the_data(ar_dir,
                                                          monkeypatch):
  """Python-heap peak (tracemalloc: numpy's buffers) while loading and
  reading batches: the in-memory path holds every clip; the streamed one a
  block of clips, the eval images and the batches in flight."""
  monkeypatch.setattr(stream, "BLOCK", 16)  # 12 blocks of the 192 clips

  def peak(stream_mode):
    c = cfg(ar_dir, **WAVE, **{"data.stream": stream_mode})
    tracemalloc.start()
    data = input_pipeline.load(c, progress=False)
    if data.streamed:
      from fser_jax.train import inputs as train_inputs
      inputs = train_inputs.training_inputs(c, data, jax.random.key(0))
      for _ in stream.Prefetcher(inputs.batches, [
          (np.arange(16).reshape(1, 16) + 16 * i) % inputs.n for i in range(8)]):
        pass
    _, top = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return top, data
  peak("on")  # imports and compilations first: not what is measured
  mem_peak, mem = peak("off")
  st_peak, st = peak("on")
  clips = sum(w.size for w in input_pipeline.waveforms(
      cfg(ar_dir, **{"data.stream": "off"}), mem)) * 4
  assert mem_peak > clips  # every waveform held at once
  # Streamed: the eval images (and their standardisation's temporaries),
  # a few blocks of clips in flight; no term grows with the training split
  # (its 96 clips padded would add 24 MB).
  block = stream.BLOCK * st.pad_to * 4
  assert st_peak < 5 * st.images.nbytes + 3 * block, (st_peak, block)
  assert st_peak < mem_peak / 2.5


def test_streaming_a_tfrecord_build_names_the_rebuild(tfds_dir):
  with pytest.raises(DataError, match="--file_format array_record"):
    input_pipeline.load(cfg(tfds_dir, **{"data.stream": "on"}),
                        progress=False)


def test_auto_streams_only_when_memory_would_not_hold_it(ar_dir, tfds_dir,
                                                       monkeypatch):
  import tensorflow_datasets as tfds
  c = cfg(ar_dir)
  b = tfds.builder("fser/synthetic_small", data_dir=ar_dir)
  on, why = stream_lib.stream_choice(c, b)
  assert not on and "in memory" in why
  monkeypatch.setattr(stream_lib, "available_memory", lambda: 10 ** 6)
  on, why = stream_lib.stream_choice(c, b)
  assert on and "streamed" in why
  t = tfds.builder("fser/synthetic_small", data_dir=tfds_dir)
  on, why = stream_lib.stream_choice(cfg(tfds_dir), t)
  assert not on and "cannot stream" in why


def test_clips_are_stored_as_int16_bytes_and_old_int64_builds_still_read(
    ar_dir, tfds_dir):
  """Version 1.1.0 stores a clip as one int16 byte string (an int64 list
  before: up to 10 bytes a negative sample); ClipSource parses both to the
  same waveforms, and load_metadata gives the in-memory load's labels and
  metadata on either file format."""
  import tensorflow as tf
  src = stream.ClipSource(dataset_io.get_builder(cfg(ar_dir).data))
  assert src.audio_bytes
  raw = src.raw(range(5))
  new = src.parse(raw, meta=True)
  stored = tf.io.parse_example(raw, {"audio": tf.io.FixedLenFeature(
      [], tf.string)})["audio"].numpy()
  assert [len(s) for s in stored] == [2 * w.size for w in new["audio"]]
  # The same clips as an old build stored them: int64 lists.
  old = [tf.train.Example(features=tf.train.Features(feature={
      "audio": tf.train.Feature(int64_list=tf.train.Int64List(
          value=np.round(w * 32768).astype(np.int64))),
      "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[lab])),
      **{k: tf.train.Feature(bytes_list=tf.train.BytesList(
          value=[new[k][i].encode()])) for k in stream.META_KEYS}}))
      .SerializeToString() for i, (w, lab) in
      enumerate(zip(new["audio"], new["label"]))]
  src.audio_bytes = False
  got = src.parse(old, meta=True)
  assert sum(map(len, old)) > 2.5 * sum(map(len, stored))
  for a, b in zip(got["audio"], new["audio"]):
    np.testing.assert_array_equal(a, b)
  assert got["filename"] == new["filename"]
  np.testing.assert_array_equal(got["label"], new["label"])
  # Metadata without the audio, both file formats, the load's order.
  mem = input_pipeline.load(cfg(ar_dir), progress=False)
  for d in (ar_dir, tfds_dir):
    meta = dataset_io.load_metadata(cfg(d).data)
    np.testing.assert_array_equal(meta["label"], mem.labels)
    for k in stream.META_KEYS:
      np.testing.assert_array_equal(meta[k], mem.meta[k])


def test_a_killed_streamed_process_resumes_to_the_same_parameters(ar_dir,
                                                                   tmp_path):
  """A real streamed training process, SIGKILL'd mid-run (no clean-up at
  all), then the same command: the final parameters are bitwise those of an
  uninterrupted streamed run (trained in this process)."""
  import signal
  from conftest import tiny_config, tiny_config_file
  from fser_jax.train import checkpoints
  from fser_jax.runs import cnn
  from test_reliability import _final_params, _launch, _wait_for_step
  ovr = {"train.num_epochs": 8, "train.steps_per_dispatch": 2,
         "train.checkpoint_every_epochs": 2, "data.stream": "on"}
  cfg_file = tiny_config_file(tmp_path / "cfg.py", ar_dir, **ovr)
  workdir = tmp_path / "run"
  proc = _launch(cfg_file, workdir)
  _wait_for_step(str(workdir), 14, proc)
  # The checkpoint of epoch 2 is written in the background: kill only once
  # one is finalized (orbax renames its temporary folder to the bare step),
  # so the test does not race the save on a slow machine.
  ckdir = workdir / "checkpoints"
  t0 = time.time()
  while not (ckdir.exists() and any(n.isdigit() for n in os.listdir(ckdir))):
    assert time.time() - t0 < 240 and proc.poll() is None, "no checkpoint"
    time.sleep(0.1)
  proc.send_signal(signal.SIGKILL)
  proc.communicate(timeout=120)
  assert proc.returncode == -signal.SIGKILL
  assert not (workdir / "report.json").exists()
  ck = checkpoints.Checkpoints(str(workdir))
  killed_at = ck.latest_step()
  ck.close()
  assert killed_at is not None and 0 < killed_at < 48
  proc = _launch(cfg_file, workdir)
  out, _ = proc.communicate(timeout=600)
  assert proc.returncode == 0, out[-3000:]
  assert "Resuming from the checkpoint at step" in out
  assert "Training input: data.stream=on" in out
  step, params = _final_params(workdir, ovr, ar_dir)
  cnn.run(tiny_config(ar_dir, **ovr), str(tmp_path / "ref"))
  ref_step, ref_params = _final_params(tmp_path / "ref", ovr, ar_dir)
  assert step == ref_step == 48
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params)):
    np.testing.assert_array_equal(a, b)
