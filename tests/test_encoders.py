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
                     match="model.safetensors: no such file.*pytorch_model"):
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
