"""Pretrained encoders against their reference implementation: a tiny
random Whisper made with transformers (tests/fixtures/make_encoder_fixtures.py
wrote its weights and its every-layer outputs), read from its Hugging Face
folder and from a CTranslate2 model.bin written here, without torch."""

import json
import os
import shutil
import struct

import numpy as np
import pytest

from fser_jax import encoders
from fser_jax.encoders import checkpoints, whisper

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "whisper_tiny")


def _expected():
  return np.load(os.path.join(FIX, "expected.npz"))


def test_whisper_log_mel_matches_transformers():
  e = _expected()
  mel = whisper.log_mel(e["audio"], 80, pad_to=32000)
  assert mel.shape == e["input_features"].shape == (80, 200)
  assert np.abs(mel - e["input_features"]).max() <= 1e-4


def test_whisper_every_layer_matches_transformers():
  e = _expected()
  enc = encoders.load(FIX)
  assert enc.num_layers == 3
  got = np.asarray(whisper.forward(enc.model, e["input_features"][None]))[:, 0]
  want = e["hidden_states"]
  assert got.shape == want.shape == (3, 100, 64)
  for layer in range(3):
    assert np.abs(got[layer] - want[layer]).max() <= 1e-4, layer
  # The whole way from audio (padded as the reference pads it).
  states = enc.hidden_states(np.pad(e["audio"], (0, 0)), pad_to_30s=False)
  assert states.shape == (3, 100, 64)
  assert np.abs(states - want).max() <= 1e-3


def _write_ct2(path, variables: dict, name="WhisperSpec"):
  """A model.bin in CTranslate2's layout (model_spec._serialize)."""
  def string(s):
    return struct.pack("H", len(s) + 1) + s.encode() + b"\0"
  out = struct.pack("I", 6) + string(name) + struct.pack("I", 3)
  out += struct.pack("I", len(variables))
  for k, v in variables.items():
    v = np.asarray(v)
    code = {np.dtype(np.float32): 0, np.dtype(np.float16): 4,
            np.dtype(np.int16): 2}[v.dtype]
    out += string(k) + struct.pack("B", v.ndim) + b"".join(
        struct.pack("I", d) for d in v.shape) + struct.pack("B", code)
    out += struct.pack("I", v.nbytes) + v.tobytes()
  out += struct.pack("I", 0)
  with open(path, "wb") as f:
    f.write(out)


def _as_ct2(params: dict, dtype=np.float16) -> dict:
  """transformers' encoder names -> CTranslate2's (q, k, v fused)."""
  v = {"encoder/num_heads": np.array(2, np.int16)}
  c = lambda a: np.asarray(a, dtype)
  for i in (1, 2):
    v[f"encoder/conv{i}/weight"] = c(params[f"conv{i}.weight"])
    v[f"encoder/conv{i}/bias"] = c(params[f"conv{i}.bias"])
  v["encoder/position_encodings/encodings"] = c(params["embed_positions.weight"])
  for i in range(2):
    p, q = f"encoder/layer_{i}/", f"layers.{i}.self_attn."
    v[p + "self_attention/linear_0/weight"] = c(np.concatenate(
        [params[q + n + ".weight"] for n in ("q_proj", "k_proj", "v_proj")]))
    v[p + "self_attention/linear_0/bias"] = c(np.concatenate(
        [params[q + "q_proj.bias"], np.zeros(64), params[q + "v_proj.bias"]]))
    v[p + "self_attention/linear_1/weight"] = c(params[q + "out_proj.weight"])
    v[p + "self_attention/linear_1/bias"] = c(params[q + "out_proj.bias"])
    l = f"layers.{i}."
    for ours, theirs in (("fc1", "ffn/linear_0"), ("fc2", "ffn/linear_1")):
      v[p + theirs + "/weight"] = c(params[l + ours + ".weight"])
      v[p + theirs + "/bias"] = c(params[l + ours + ".bias"])
    for ours, theirs in (("self_attn_layer_norm", "self_attention/layer_norm"),
                         ("final_layer_norm", "ffn/layer_norm")):
      v[p + theirs + "/gamma"] = c(params[l + ours + ".weight"])
      v[p + theirs + "/beta"] = c(params[l + ours + ".bias"])
  v["encoder/layer_norm/gamma"] = c(params["layer_norm.weight"])
  v["encoder/layer_norm/beta"] = c(params["layer_norm.bias"])
  return v


def _encoder_params():
  from safetensors.numpy import load_file
  p = load_file(os.path.join(FIX, "model.safetensors"))
  return {k[len("encoder."):]: v for k, v in p.items()
          if k.startswith("encoder.")}


def test_ctranslate2_folder_reads_to_the_same_encoder(tmp_path):
  params = _encoder_params()
  _write_ct2(tmp_path / "model.bin", _as_ct2(params, np.float32))
  e = _expected()
  enc = encoders.load(str(tmp_path))
  assert enc.config == encoders.load(FIX).config
  got = np.asarray(whisper.forward(enc.model, e["input_features"][None]))[:, 0]
  assert np.abs(got - e["hidden_states"]).max() <= 1e-4
  # float16 on disk (faster-whisper's usual): within float16 rounding.
  _write_ct2(tmp_path / "model.bin", _as_ct2(params, np.float16))
  got16 = np.asarray(whisper.forward(encoders.load(str(tmp_path)).model,
                                     e["input_features"][None]))[:, 0]
  assert 0 < np.abs(got16 - e["hidden_states"]).max() <= 0.05


def test_checkpoint_errors_name_the_file_and_what_is_missing(tmp_path):
  with pytest.raises(checkpoints.CheckpointFileError, match="no such folder"):
    encoders.load(str(tmp_path / "nowhere"))
  with pytest.raises(checkpoints.CheckpointFileError, match="config.json"):
    encoders.load(str(tmp_path))
  d = tmp_path / "torch_only"
  d.mkdir()
  shutil.copy(os.path.join(FIX, "config.json"), d)
  (d / "pytorch_model.bin").write_bytes(b"x")
  with pytest.raises(checkpoints.CheckpointFileError,
                     match="pytorch_model.bin: not a torch.save zip file"):
    encoders.load(str(d))
  os.remove(d / "pytorch_model.bin")
  (d / "model.pt").write_bytes(b"x")
  with pytest.raises(checkpoints.CheckpointFileError,
                     match="model.safetensors: no such file.*model.pt"):
    encoders.load(str(d))
  cfg = json.load(open(os.path.join(FIX, "config.json")))
  cfg["model_type"] = "bert"
  (d / "config.json").write_text(json.dumps(cfg))
  with pytest.raises(checkpoints.CheckpointFileError, match="'bert'"):
    encoders.load(str(d))
  q = tmp_path / "int8"
  q.mkdir()
  v = _as_ct2(_encoder_params(), np.float32)
  v["encoder/layer_0/ffn/linear_0/weight_scale"] = np.ones(128, np.float32)
  _write_ct2(q / "model.bin", v)
  with pytest.raises(checkpoints.CheckpointFileError, match="int8"):
    encoders.load(str(q))
  v = _as_ct2(_encoder_params(), np.float32)
  del v["encoder/layer_1/ffn/linear_1/weight"]
  _write_ct2(q / "model.bin", v)
  with pytest.raises(checkpoints.CheckpointFileError,
                     match="model.bin: the variable encoder/layer_1/ffn/"
                     "linear_1/weight is missing"):
    encoders.load(str(q))


def test_short_clips_slice_the_positions():
  enc = encoders.load(FIX)
  wav = _expected()["audio"][:8000]  # 0.5 s: 50 frames -> 25 positions
  states = enc.hidden_states(wav)
  assert states.shape == (3, 25, 64)
  with pytest.raises(ValueError, match="at most 100"):
    whisper.forward(enc.model, np.zeros((1, 80, 202), np.float32))


def test_padded_batches_give_each_clips_own_states():
  """Clips of three lengths in one zero-padded batch, masked: each clip's
  pooled states equal those of its own unpadded run."""
  enc = encoders.load(FIX)
  a = _expected()["audio"]
  mels = [whisper.log_mel(a[:n], 80) for n in (4960, 9600, 15840)]
  assert [m.shape[1] for m in mels] == [31, 60, 99]  # odd ones too
  got = whisper.pooled(enc.model, mels, bucket=100, batch=3)
  for m, g in zip(mels, got):
    h = np.asarray(whisper.forward(enc.model, m[None]))[:, 0]
    want = np.concatenate([h.mean(1), h.std(1)], axis=1)
    assert np.abs(g - want).max() <= 1e-4


def test_long_inputs_attend_one_head_at_a_time_to_the_same_result():
  """The per-(clip, head) path for long inputs equals the batched one,
  masks included."""
  rng = np.random.default_rng(0)
  q, k, v = (rng.normal(size=(2, 600, 2, 8)).astype(np.float32)
             for _ in range(3))
  valid = np.arange(600)[None, :] < np.array([[600], [450]])
  long = np.asarray(whisper.attend(q, k, v, valid))
  logits = np.einsum("bqhd,bkhd->bhqk", q, k)
  logits = np.where(valid[:, None, None, :], logits, -np.inf)
  w = np.exp(logits - logits.max(-1, keepdims=True))
  w /= w.sum(-1, keepdims=True)
  want = np.einsum("bhqk,bkhd->bqhd", w, v)
  assert np.abs(long - want).max() <= 1e-5


def test_a_clip_longer_than_the_window_is_pooled_over_its_windows():
  """The tiny model's window is 2 s (100 positions): a 5.3 s clip runs as
  windows of 2, 2 and 1.3 s, and its mean and std are those of all their
  positions together; a last piece under 1 s is left out."""
  enc = encoders.load(FIX)
  a = _expected()["audio"]
  clip = np.concatenate([a, a[::-1], a[:20800]])  # 84800 samples
  got = whisper.pooled_clips(enc.model, [clip, a[:8000]], batch=2)
  frames = [np.asarray(whisper.forward(
      enc.model, whisper.log_mel(clip[s:s + 32000], 80)[None]))[:, 0]
      for s in (0, 32000, 64000)]
  assert [f.shape[1] for f in frames] == [100, 100, 65]
  allpos = np.concatenate(frames, axis=1)
  want = np.concatenate([allpos.mean(1), allpos.std(1)], axis=1)
  assert np.abs(got[0] - want).max() <= 1e-4
  short = np.asarray(whisper.forward(
      enc.model, whisper.log_mel(a[:8000], 80)[None]))[:, 0]
  assert np.abs(got[1] - np.concatenate([short.mean(1), short.std(1)],
                                        axis=1)).max() <= 1e-4
  # Two full windows and a 0.05 s tail: the tail is left out.
  two = np.concatenate(frames[:2], axis=1)
  with_tail = whisper.pooled_clips(enc.model, [clip[:64800]])
  assert np.abs(with_tail[0] - np.concatenate(
      [two.mean(1), two.std(1)], axis=1)).max() <= 1e-4


# --- the wav2vec2 family --------------------------------------------------
W2V = ("wav2vec2_base", "wav2vec2_large", "hubert_base", "wavlm_base",
       "wavlm_large", "data2vec_audio")


def _fixture(name):
  return os.path.join(os.path.dirname(__file__), "fixtures", name)


@pytest.mark.parametrize("name", W2V)
def test_wav2vec2_family_every_layer_matches_transformers(name):
  """Tiny random models made with transformers (post-norm with group norm,
  pre-norm with layer norm and conv biases, HuBERT without the projection's
  norm, WavLM's gated relative position bias in both forms, data2vec-
  audio's stack of positional convolutions): every hidden state from the
  raw audio, normalised as each folder's preprocessor config says."""
  e = np.load(os.path.join(_fixture(name), "expected.npz"))
  enc = encoders.load(_fixture(name))
  assert enc.family == {"wav2vec2": "wav2vec2", "hubert": "hubert",
                        "wavlm": "wavlm", "data2vec": "data2vec-audio"}[
                            name.rsplit("_", 1)[0]]
  assert enc.config.do_normalize == name.endswith("large")
  got = enc.hidden_states(e["audio"])
  want = e["hidden_states"]
  assert got.shape == want.shape == (3, 399, 32)
  for layer in range(3):
    assert np.abs(got[layer] - want[layer]).max() <= 1e-4, layer


def test_wavlm_relative_position_bias_is_what_the_states_depend_on():
  """The parity above would not notice a missing bias if the bias did not
  move the states: without it they differ well beyond the bar."""
  import jax.numpy as jnp
  from fser_jax.encoders import wav2vec2
  e = np.load(os.path.join(_fixture("wavlm_base"), "expected.npz"))
  enc = encoders.load(_fixture("wavlm_base"))
  rel = enc.model.layers[0].attn.rel_embed
  rel[...] = jnp.zeros_like(rel[...])
  got = np.asarray(wav2vec2.forward(enc.model, e["audio"][None]))[:, 0]
  assert np.abs(got[2] - e["hidden_states"][2]).max() > 1e-3
  # float32 buckets as transformers computes them: symmetric offsets get
  # the two halves, far ones the last bucket of their half.
  b = wav2vec2.relative_buckets(100, 16, 40)
  assert b[0, 0] == 0 and b[0, 1] == 9 and b[1, 0] == 1
  assert b[0, 99] == 15 and b[99, 0] == 7


@pytest.mark.parametrize("kernel,stride,bias", [(10, 5, False), (3, 2, True),
                                                (4, 4, False), (7, 3, True)])
def test_wav2vec2_first_layer_folded_equals_conv_norm_gelu(kernel, stride,
                                                          bias):
  """The group-norm variants' first layer computed in one pass (frame
  statistics folded into the kernel) against the layers it replaces,
  conv -> group norm -> GELU, on padded clips with a DC offset (where a
  variance taken as E[y^2] - E[y]^2 would lose digits) and kernels that
  do and do not span whole strides."""
  import jax
  import jax.numpy as jnp
  from flax import nnx
  from fser_jax.encoders import wav2vec2
  rng = np.random.default_rng(kernel)
  conv = nnx.Conv(1, 16, (kernel,), strides=(stride,), padding="VALID",
                  use_bias=bias, rngs=nnx.Rngs(0))
  if bias:
    conv.bias.value = jnp.asarray(rng.normal(size=16), jnp.float32)
  norm = wav2vec2.ChannelNorm(16)
  norm.scale.value = jnp.asarray(rng.uniform(0.5, 2, 16), jnp.float32)
  norm.bias.value = jnp.asarray(rng.normal(size=16), jnp.float32)
  wav = jnp.asarray(3.0 + rng.normal(size=(3, 2003)), jnp.float32)
  t = (2003 - kernel) // stride + 1
  lengths = jnp.asarray([t, t - 41, 57])
  valid = jnp.arange(t)[None] < lengths[:, None]
  # The layers it replaces, written out: per clip, each channel's mean and
  # variance over its valid frames (float64), then the norm's affine map.
  y = np.asarray(conv(wav[..., None]), np.float64)
  normed = np.empty_like(y)
  for b, n in enumerate(np.asarray(lengths)):
    normed[b] = (y[b] - y[b, :n].mean(0)) / np.sqrt(y[b, :n].var(0) + 1e-5)
  normed = normed * np.asarray(norm.scale.value) + np.asarray(norm.bias.value)
  want = jax.nn.gelu(jnp.asarray(normed, jnp.float32), approximate=False)
  got = wav2vec2.first_layer_group(conv, norm, wav, valid)
  assert got.shape == want.shape == (3, t, 16)
  assert float(jnp.abs(got - want).max()) <= 2e-4
  # The third clip's statistics are its own: changing samples past its
  # frames moves the others' outputs only beyond them.
  wav2 = wav.at[2, 57 * stride + kernel:].set(0.0)
  got2 = wav2vec2.first_layer_group(conv, norm, wav2, valid)
  assert float(jnp.abs(got2[2, :57] - got[2, :57]).max()) <= 1e-6


@pytest.mark.parametrize("name", ("wav2vec2_base", "wavlm_large",
                                  "data2vec_audio"))
def test_wav2vec2_padded_batches_give_each_clips_own_states(name):
  """Clips of three lengths zero-padded into one batch and masked (the
  group norm's statistics, the positional convolutions, the keys): each
  clip's pooled states equal those of its own unpadded run."""
  from fser_jax.encoders import wav2vec2
  enc = encoders.load(_fixture(name))
  a = np.load(os.path.join(_fixture(name), "expected.npz"))["audio"]
  clips = [a[:1700], a[:5000], a[:7990]]
  got, counts = wav2vec2.pooled(enc.model, clips, bucket=4000, batch=3)
  assert counts.tolist() == [84, 249, 398]
  for clip, g in zip(clips, got):
    h = enc.hidden_states(clip)
    want = np.concatenate([h.mean(1), h.std(1)], axis=1)
    assert np.abs(g - want).max() <= 1e-4


def test_wav2vec2_checkpoint_errors_name_the_file_and_what_is_missing(
    tmp_path):
  src = _fixture("wav2vec2_base")
  d = tmp_path / "m"
  shutil.copytree(src, d)
  cfg = json.load(open(d / "config.json"))
  json.dump({**cfg, "hidden_act": "relu"}, open(d / "config.json", "w"))
  with pytest.raises(checkpoints.CheckpointFileError,
                     match="config.json: hidden_act 'relu'"):
    encoders.load(str(d))
  del cfg["num_hidden_layers"]
  json.dump(cfg, open(d / "config.json", "w"))
  with pytest.raises(checkpoints.CheckpointFileError,
                     match="the field num_hidden_layers is missing"):
    encoders.load(str(d))
  shutil.copy(os.path.join(src, "config.json"), d / "config.json")
  from safetensors.numpy import load_file, save_file
  p = load_file(str(d / "model.safetensors"))
  del p["encoder.layers.1.feed_forward.output_dense.bias"]
  save_file(p, str(d / "model.safetensors"))
  with pytest.raises(checkpoints.CheckpointFileError,
                     match="model.safetensors: the weight encoder.layers.1."
                     "feed_forward.output_dense.bias is missing"):
    encoders.load(str(d))


# --- the states' store: once per clip, resumable, split over processes ----
def _clips(n=30):
  a = _expected()["audio"]
  rng = np.random.default_rng(1)
  return [(a[:int(rng.integers(6000, 32000))] * (0.5 + i / n)).astype(
      np.float32) for i in range(n)]


_KILLED = r'''
import os, signal, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from test_encoders import _clips, FIX
from fser_jax import encoders
from fser_jax.encoders import extract
clips = _clips()
def loader(i):
  def load():
    if i == 13:  # mid-chunk: the process dies as `kill -9` would kill it
      os.kill(os.getpid(), signal.SIGKILL)
    return clips[i]
  return load
enc = encoders.load(FIX)
extract.extract(enc, [loader(i) for i in range(len(clips))],
                extract.Store(sys.argv[2], enc), chunk=4, batch=3)
'''


def test_a_killed_extraction_resumes_with_what_it_had_written(tmp_path):
  """A process killed while reading its fourth chunk leaves three whole
  parts; the next run computes only the other clips, and the states equal
  those of one uninterrupted run."""
  import subprocess
  import sys
  from fser_jax.encoders import extract
  here = os.path.dirname(os.path.abspath(__file__))
  proc = subprocess.run([sys.executable, "-c", _KILLED, here,
                         str(tmp_path / "store")], capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == -9, proc.stderr[-2000:]
  enc = encoders.load(FIX)
  store = extract.Store(str(tmp_path / "store"), enc)
  assert len(store.parts()) == 3 and len(store.index()) == 12
  clips = _clips()
  keys, stats = extract.extract(enc, clips, store, chunk=4, batch=3)
  assert (stats["computed"], stats["reused"]) == (18, 12)
  fresh = extract.Store(str(tmp_path / "fresh"), enc)
  keys2, _ = extract.extract(enc, clips, fresh, chunk=30, batch=8)
  assert keys == keys2
  assert np.abs(store.read(keys) - fresh.read(keys2)).max() <= 1e-5
  # Once more: nothing to compute.
  assert extract.extract(enc, clips, store, chunk=4)[1]["computed"] == 0


def test_processes_split_the_chunks_and_share_the_store(tmp_path):
  from fser_jax.encoders import extract
  enc = encoders.load(FIX)
  clips = _clips(10)
  store = extract.Store(str(tmp_path), enc)
  k0, s0 = extract.extract(enc, clips, store, chunk=3, process_index=0,
                           process_count=2)
  k1, s1 = extract.extract(enc, clips, store, chunk=3, process_index=1,
                           process_count=2)
  # chunks [0-2] [3-5] [6-8] [9]: process 0 takes the 1st and 3rd.
  assert (s0["computed"], s1["computed"]) == (6, 4)
  assert [k is None for k in k0] == [False] * 3 + [True] * 3 + [False] * 3 + [True]
  keys = [a or b for a, b in zip(k0, k1)]
  want = np.stack([np.asarray(enc.pooled([c]))[0] for c in clips])
  assert np.abs(store.read(keys) - want).max() <= 1e-5


def test_the_store_is_keyed_by_audio_and_weights_and_names_a_bad_part(
    tmp_path, monkeypatch):
  from absl import logging
  from fser_jax.frontend.audio import AudioError
  from fser_jax.encoders import extract
  enc = encoders.load(FIX)
  clips = _clips(6)
  store = extract.Store(str(tmp_path), enc)
  keys, _ = extract.extract(enc, clips, store, chunk=3)
  # Changed audio is a new key; other weights are another folder.
  louder = [c * 1.01 for c in clips[:1]]
  assert extract.extract(enc, louder, store)[1]["computed"] == 1
  d = tmp_path / "other_weights"
  shutil.copytree(FIX, d)
  from safetensors.numpy import load_file, save_file
  p = load_file(str(d / "model.safetensors"))
  p["encoder.layer_norm.bias"] = p["encoder.layer_norm.bias"] + 1
  save_file(p, str(d / "model.safetensors"))
  other = encoders.load(str(d))
  assert other.digest != enc.digest
  assert extract.Store(str(tmp_path), other).folder != store.folder
  # A damaged part is named, removed, and its clips computed again.
  said = []
  monkeypatch.setattr(logging, "warning", lambda *a: said.append(a[0] % a[1:]))
  part = store.index()[keys[0]][0]  # clips 0-2's part
  with open(part, "r+b") as f:
    f.truncate(100)
  _, stats = extract.extract(enc, clips, store, chunk=3)
  assert any(part in s and "cannot be read" in s for s in said)
  assert stats["computed"] == 3 and stats["reused"] == 3
  # An unreadable clip is skipped and named, the others go on.
  def broken():
    raise AudioError("/data/x.wav", "not audio")
  keys, stats = extract.extract(enc, [broken] + clips[:2], store,
                                names=["/data/x.wav", "a", "b"])
  assert keys[0] is None and keys[1:] == [extract.clip_key(c)
                                          for c in clips[:2]]
  assert stats["bad"] == [{"clip": "/data/x.wav",
                           "error": "/data/x.wav: not audio"}]


def test_embed_mode_writes_every_clips_states_and_names_a_bad_file(
    tfds_dir, user_recordings, tmp_path):
  """launch.py --mode embed on a manifest with one broken file: every other
  clip's states in the store, the index says which row is which, the broken
  file is named; a second run computes nothing."""
  import csv
  from conftest import own_tiny_config
  from fser_jax.encoders import extract
  from fser_jax.experiments import embed
  rows = list(csv.reader(open(user_recordings)))
  base = os.path.dirname(user_recordings)
  broken = tmp_path / "broken.wav"
  broken.write_bytes(b"RIFF not really")
  manifest = tmp_path / "manifest.csv"
  with open(manifest, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(rows[0])
    for r in rows[1:]:
      w.writerow([os.path.join(base, r[0])] + r[1:])
    w.writerow([str(broken), rows[1][1]] + rows[1][2:])
  c = own_tiny_config(tfds_dir, str(manifest))
  with c.unlocked():
    c.encoder.path = FIX
    c.encoder.chunk = 16
  out = embed.run(c, str(tmp_path / "emb"))
  assert (out["clips"], out["embedded"], out["computed"]) == (61, 60, 60)
  assert len(out["bad"]) == 1 and "broken.wav" in out["bad"][0]["clip"]
  saved = json.load(open(tmp_path / "emb" / "embed.json"))
  assert saved["bad"] == out["bad"] and saved["encoder"]["family"] == "whisper"
  index = list(csv.DictReader(open(tmp_path / "emb" / "embed_index.csv")))
  assert len(index) == 61
  keyed = [r for r in index if r["key"]]
  store = extract.Store(str(tmp_path / "emb" / "encoder_states"),
                        encoders.load(FIX))
  x = store.read([r["key"] for r in keyed])
  from fser_jax.frontend import audio
  first = audio.load_audio(keyed[0]["path"], 16000)
  assert np.abs(x[0] - encoders.load(FIX).pooled([first])[0]).max() <= 1e-5
  again = embed.run(c, str(tmp_path / "emb"))
  assert (again["computed"], again["reused"]) == (0, 60)


# --- PyTorch pickles, read without torch ------------------------------------
def test_openai_whisper_pt_and_pytorch_model_bin_read_without_torch():
  """OpenAI's own .pt layout (float16, as OpenAI ships it) and a Hugging
  Face folder with pytorch_model.bin give the encoders of the safetensors
  folders they were written from."""
  e = _expected()
  enc = encoders.load(_fixture("whisper_tiny_openai.pt"))
  assert enc.config == encoders.load(FIX).config
  got = np.asarray(whisper.forward(enc.model, e["input_features"][None]))[:, 0]
  assert 0 < np.abs(got - e["hidden_states"]).max() <= 0.05  # float16
  w = encoders.load(_fixture("wav2vec2_base_torch"))
  want = np.load(os.path.join(_fixture("wav2vec2_base"), "expected.npz"))
  assert np.abs(w.hidden_states(want["audio"])
                - want["hidden_states"]).max() <= 1e-4


def test_a_pickle_that_asks_for_anything_but_tensors_is_refused(tmp_path):
  """A torch.save-shaped archive whose pickle would call os.system: refused
  by name, nothing run."""
  import pickle
  import zipfile

  class Evil:
    def __reduce__(self):
      return (os.system, (f"touch {tmp_path}/pwned",))

  path = tmp_path / "model.pt"
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("model/data.pkl", pickle.dumps({"dims": Evil()}))
  with pytest.raises(checkpoints.CheckpointFileError,
                     match=r"model.pt: the pickle asks for (posix|os)\.system"):
    encoders.load(str(path))
  assert not (tmp_path / "pwned").exists()


def test_the_states_a_head_chooses_among(tmp_path):
  """config.encoder.layers / pooling / family: which states are candidates,
  pooled how, their mix; bad values named."""
  from fser_jax.encoders import pooling
  from fser_jax.errors import UserError
  x = np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6)  # d = 3
  b, names = pooling.candidates(x)
  assert names == [0, 1, 2, 3, "mix"] and b.shape == (2, 5, 6)
  assert np.allclose(b[:, 4], x.mean(1))
  b, names = pooling.candidates(x, "1-2", "mean")
  assert names == [1, 2, "mix"] and b.shape == (2, 3, 3)
  assert np.allclose(b[:, 0], x[:, 1, :3])
  assert pooling.candidates(x, "-1")[1] == [3]  # one state: no mix
  with pytest.raises(UserError, match="states 0-3; 7 is not one"):
    pooling.candidates(x, "2,7")
  with pytest.raises(UserError, match="layer numbers"):
    pooling.candidates(x, "last")
  with pytest.raises(UserError, match="encoder.pooling 'max'"):
    pooling.candidates(x, "", "max")
  with pytest.raises(checkpoints.CheckpointFileError,
                     match="holds a whisper encoder, not wavlm"):
    encoders.load(FIX, family="wavlm")


def test_wav2vec2_programs_compile_without_ynnpack_unless_the_user_says(
    monkeypatch):
  """The wav2vec2 family's forward passes carry their own XLA:CPU options:
  no YNNPACK fusion in their compiled program even where the process-wide
  flag asks for YNNPACK dots (which a control compile shows it would
  put in); a user who set the flag in XLA_FLAGS keeps it."""
  import jax
  import jax.numpy as jnp
  from fser_jax.cpu import xla as xla_cpu
  from fser_jax.encoders import wav2vec2
  enc = encoders.load(_fixture("wav2vec2_base"))
  wav = jnp.zeros((1, 4000), jnp.float32)
  text = wav2vec2.forward.lower(enc.model, wav).compile().as_text()
  assert "%ynn_fusion" not in text
  control = jax.jit(lambda x, w: x @ w, compiler_options={
      xla_cpu.FLAG.lstrip("-"): "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}).lower(
          jnp.ones((64, 64)), jnp.ones((64, 64))).compile().as_text()
  assert "%ynn_fusion" in control
  assert xla_cpu.ynn_off_options() == {xla_cpu.FLAG.lstrip("-"): ""}
  monkeypatch.setattr(xla_cpu, "USER_SET", True)
  assert xla_cpu.ynn_off_options() == {}
