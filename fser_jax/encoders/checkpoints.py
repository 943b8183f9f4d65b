"""Readers of pretrained encoders' checkpoint files, without torch.

- A Hugging Face folder: config.json (`model_type`) and model.safetensors
  (several shards: model.safetensors.index.json), read with the safetensors
  package's numpy API; or pytorch_model.bin in its place.
- OpenAI's own Whisper file (`base.pt`). PyTorch pickles are read with a
  restricted unpickler (`read_torch`): tensors, storages and ordered dicts
  only, anything else refused by name.
- A CTranslate2 folder (model.bin, as faster-whisper downloads it): its
  binary layout (CTranslate2's python/ctranslate2/specs/model_spec.py,
  `_serialize`, binary version 6), float32 / float16 / bfloat16 variables;
  int8-quantised models are refused (re-convert with
  `--quantization float16`).

`load(path)` -> a `Loaded` encoder whose `hidden_states(wav)` gives every
layer's states. Errors name the file and what is missing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct

import numpy as np

from fser_jax.errors import UserError


class CheckpointFileError(UserError, ValueError):
  """A checkpoint folder that cannot be read as an encoder."""


@dataclasses.dataclass
class Loaded:
  family: str
  config: object
  model: object  # the NNX module
  path: str
  digest: str  # identifies the weights (for caches)

  @property
  def num_layers(self) -> int:
    return self.config.layers + 1  # embeddings + every layer

  sample_rate: int = 16000

  @property
  def module(self):
    from fser_jax.encoders import wav2vec2, whisper
    return whisper if self.family == "whisper" else wav2vec2

  def hidden_states(self, wav: np.ndarray, pad_to_30s: bool = False
                    ) -> np.ndarray:
    """[layers + 1, frames, d] float32 for one 16 kHz clip (Whisper: <=
    30 s, padded to 30 s as the reference pads with `pad_to_30s`)."""
    from fser_jax.encoders import wav2vec2, whisper
    if self.family != "whisper":
      x = wav2vec2.normalise(wav) if self.config.do_normalize else wav
      return np.asarray(wav2vec2.forward(
          self.model, np.asarray(x, np.float32)[None]))[:, 0]
    mel = whisper.log_mel(wav, self.config.n_mels,
                          whisper.CHUNK_SAMPLES if pad_to_30s else None)
    mel = mel[:, : 2 * self.config.max_positions]
    return np.asarray(whisper.forward(self.model, mel[None]))[:, 0]

  def pooled(self, wavs, batch: int = 8) -> np.ndarray:
    """[N, layers + 1, 2 d]: every layer's mean and std over each 16 kHz
    clip's positions (clips of any length: consecutive 30 s windows)."""
    return self.module.pooled_clips(self.model, list(wavs), batch=batch)


def _digest(paths) -> str:
  """The weights' identity: their files' content (sha1)."""
  import hashlib
  h = hashlib.sha1()
  for p in paths:
    with open(p, "rb") as f:
      for block in iter(lambda: f.read(1 << 22), b""):
        h.update(block)
  return h.hexdigest()[:16]


# --- Hugging Face -------------------------------------------------------------
def _read_safetensors(folder: str) -> tuple[dict, list[str]]:
  from safetensors.numpy import load_file
  index = os.path.join(folder, "model.safetensors.index.json")
  if os.path.exists(index):
    with open(index) as f:
      files = sorted(set(json.load(f)["weight_map"].values()))
  else:
    files = ["model.safetensors"]
  paths = [os.path.join(folder, f) for f in files]
  missing = [p for p in paths if not os.path.exists(p)]
  torch_bin = os.path.join(folder, "pytorch_model.bin")
  if missing and os.path.exists(torch_bin):
    sd = read_torch(torch_bin)
    return {k: np.asarray(v, np.float32) for k, v in sd.items()
            if np.asarray(v).dtype.kind == "f"}, [torch_bin]
  if missing:
    bins = [f for f in os.listdir(folder) if f.endswith((".bin", ".pt"))]
    raise CheckpointFileError(
        f"{missing[0]}: no such file" + (
            f" (the folder has {', '.join(bins)}, not pytorch_model.bin: "
            "save the model with save_pretrained(), or convert it with "
            "CTranslate2)" if bins else ""))
  out = {}
  for p in paths:
    out.update({k: np.asarray(v, np.float32) for k, v in load_file(p).items()})
  return out, paths


def _strip(params: dict, prefixes) -> dict:
  for pre in prefixes:
    sub = {k[len(pre):]: v for k, v in params.items() if k.startswith(pre)}
    if sub:
      return sub
  return {}


def _hf_whisper(folder: str, cfg_json: dict) -> Loaded:
  from fser_jax.encoders import whisper
  params, paths = _read_safetensors(folder)
  enc = _strip(params, ("model.encoder.", "encoder."))
  if not enc:
    raise CheckpointFileError(f"{paths[0]}: no encoder weights (expected "
                              "names like model.encoder.conv1.weight)")
  cfg = whisper.Config(
      n_mels=int(cfg_json["num_mel_bins"]), d_model=int(cfg_json["d_model"]),
      layers=int(cfg_json["encoder_layers"]),
      heads=int(cfg_json["encoder_attention_heads"]),
      ffn=int(cfg_json["encoder_ffn_dim"]),
      max_positions=int(cfg_json["max_source_positions"]))
  return Loaded("whisper", cfg, _build(whisper, cfg, enc, paths[0]), folder,
                _digest(paths))


def _hf_wav2vec2(folder: str, cfg_json: dict) -> Loaded:
  from fser_jax.encoders import wav2vec2
  params, paths = _read_safetensors(folder)
  anchor = "feature_extractor.conv_layers.0.conv.weight"
  prefix = next((k[:-len(anchor)] for k in params if k.endswith(anchor)),
                None)
  if prefix is None:
    raise CheckpointFileError(f"{paths[0]}: no feature encoder weights "
                              f"(expected a name ending in {anchor})")
  enc = _strip(params, (prefix,)) if prefix else params
  pre = os.path.join(folder, "preprocessor_config.json")
  do_normalize = None
  if os.path.exists(pre):
    with open(pre) as f:
      do_normalize = json.load(f).get("do_normalize")
  try:
    cfg = wav2vec2.config_from_hf(cfg_json, do_normalize)
  except (KeyError, ValueError) as e:
    raise CheckpointFileError(
        f"{os.path.join(folder, 'config.json')}: "
        + (f"the field {e.args[0]} is missing" if isinstance(e, KeyError)
           else str(e))) from None
  return Loaded(cfg.family, cfg, _build(wav2vec2, cfg, enc, paths[0]), folder,
                _digest(paths))


def _build(module, cfg, params, path):
  try:
    return module.build(cfg, params)
  except KeyError as e:
    raise CheckpointFileError(f"{path}: the weight {e.args[0]} is missing "
                              "(is this the model config.json says?)"
                              ) from None


# --- PyTorch pickles, without torch ---------------------------------------------
_TORCH_DTYPES = {"FloatStorage": np.float32, "HalfStorage": np.float16,
                 "BFloat16Storage": "bfloat16", "DoubleStorage": np.float64,
                 "LongStorage": np.int64, "IntStorage": np.int32,
                 "ShortStorage": np.int16, "CharStorage": np.int8,
                 "ByteStorage": np.uint8, "BoolStorage": np.bool_}


def read_torch(path: str) -> dict:
  """The object a `torch.save` zip file holds (state dicts: {name: float32 /
  int numpy array}), read with a restricted unpickler: only tensors,
  storages and ordered dicts are rebuilt, any other class is refused by
  name, so a pickle cannot run code here."""
  import pickle
  import zipfile

  if not zipfile.is_zipfile(path):
    raise CheckpointFileError(
        f"{path}: not a torch.save zip file (saved by PyTorch < 1.6?); load "
        "it with torch once and save it again, or save_pretrained("
        "safe_serialization=True)")
  zf = zipfile.ZipFile(path)
  names = zf.namelist()
  pkl = next((n for n in names if n.endswith("/data.pkl")
              or n == "data.pkl"), None)
  if pkl is None:
    raise CheckpointFileError(f"{path}: no data.pkl in the archive")
  root = pkl[:-len("data.pkl")]
  if f"{root}byteorder" in names and zf.read(f"{root}byteorder") != b"little":
    raise CheckpointFileError(f"{path}: saved on a big-endian machine; not "
                              "read here")
  storages = {}

  def storage(kind, key, numel):
    if key not in storages:
      dtype = _TORCH_DTYPES[kind]
      raw = zf.read(f"{root}data/{key}")
      if dtype == "bfloat16":
        a = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(
            np.float32)
      else:
        a = np.frombuffer(raw, dtype)
      storages[key] = a
    return storages[key]

  def rebuild_tensor(st, offset, size, stride, *_):
    if not size:
      return np.array(st[offset])
    itemsize = st.itemsize
    return np.lib.stride_tricks.as_strided(
        st[offset:], shape=tuple(size),
        strides=tuple(itemsize * s for s in stride)).copy()

  def rebuild_parameter(data, *_):
    return data

  allowed = {("collections", "OrderedDict"): __import__("collections"
                                                        ).OrderedDict,
             ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
             ("torch._utils", "_rebuild_parameter"): rebuild_parameter}

  class Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
      if (module, name) in allowed:
        return allowed[(module, name)]
      if module == "torch" and name in _TORCH_DTYPES:
        return name
      raise CheckpointFileError(
          f"{path}: the pickle asks for {module}.{name}, which is not a "
          "tensor; refused (only state dicts of tensors are read)")

    def persistent_load(self, pid):
      if pid[0] != "storage" or pid[1] not in _TORCH_DTYPES:
        raise CheckpointFileError(f"{path}: a storage of kind {pid[1]!r} "
                                  "cannot be read here")
      return storage(pid[1], pid[2], pid[4])

  with zf.open(pkl) as f:
    return Unpickler(f).load()


_OPENAI = (("attn.query", "self_attn.q_proj"), ("attn.key", "self_attn.k_proj"),
           ("attn.value", "self_attn.v_proj"), ("attn.out", "self_attn.out_proj"),
           ("attn_ln", "self_attn_layer_norm"), ("mlp.0", "fc1"),
           ("mlp.2", "fc2"), ("mlp_ln", "final_layer_norm"))


def _openai_whisper(path: str) -> Loaded:
  """OpenAI's own checkpoint (whisper's `base.pt`: {'dims',
  'model_state_dict'}), renamed to transformers' encoder names."""
  from fser_jax.encoders import whisper
  ckpt = read_torch(path)
  if not isinstance(ckpt, dict) or not {"dims", "model_state_dict"} <= set(
      ckpt):
    raise CheckpointFileError(f"{path}: not an OpenAI Whisper checkpoint (no "
                              "'dims' and 'model_state_dict')")
  dims, sd = ckpt["dims"], ckpt["model_state_dict"]
  params = {}
  for k, v in sd.items():
    if not k.startswith("encoder."):
      continue
    k = k[len("encoder."):]
    if k == "positional_embedding":
      k = "embed_positions.weight"
    elif k.startswith("ln_post."):
      k = "layer_norm." + k[len("ln_post."):]
    elif k.startswith("blocks."):
      _, i, rest = k.split(".", 2)
      for theirs, ours in _OPENAI:
        if rest.startswith(theirs + "."):
          rest = ours + rest[len(theirs):]
          break
      k = f"layers.{i}.{rest}"
    params[k] = np.asarray(v, np.float32)
  try:
    cfg = whisper.Config(
        n_mels=int(dims["n_mels"]), d_model=int(dims["n_audio_state"]),
        layers=int(dims["n_audio_layer"]), heads=int(dims["n_audio_head"]),
        ffn=int(params["layers.0.fc1.weight"].shape[0]),
        max_positions=int(dims["n_audio_ctx"]))
  except KeyError as e:
    raise CheckpointFileError(f"{path}: no {e.args[0]} (in dims or the "
                              "encoder's weights)") from None
  return Loaded("whisper", cfg, _build(whisper, cfg, params, path), path,
                _digest([path]))


# --- CTranslate2 --------------------------------------------------------------
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32,
               4: np.float16, 5: "bfloat16"}


def read_ct2(path: str) -> tuple[str, dict]:
  """(spec name, {variable name: array}) of a CTranslate2 model.bin."""
  with open(path, "rb") as f:
    data = f.read()
  pos = 0

  def take(fmt):
    nonlocal pos
    v = struct.unpack_from(fmt, data, pos)
    pos += struct.calcsize(fmt)
    return v if len(v) > 1 else v[0]

  def string():
    nonlocal pos
    n = take("H")
    s = data[pos:pos + n - 1].decode("utf-8")
    pos += n
    return s

  version = take("I")
  if version < 5:
    raise CheckpointFileError(f"{path}: CTranslate2 binary version {version}; "
                              "re-convert with CTranslate2 3.0 or newer")
  name = string()
  take("I")  # spec revision
  out = {}
  for _ in range(take("I")):
    var = string()
    rank = take("B")
    shape = [take("I") for _ in range(rank)]
    dtype = _CT2_DTYPES[take("B")]
    nbytes = take("I")
    raw = data[pos:pos + nbytes]
    pos += nbytes
    if dtype == "bfloat16":
      a = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(
          np.float32)
    else:
      a = np.frombuffer(raw, dtype)
    out[var] = a.reshape(shape)
  for _ in range(take("I")):  # aliases
    alias, target = string(), string()
    out[alias] = out[target]
  return name, out


def _ct2_whisper(folder: str) -> Loaded:
  from fser_jax.encoders import whisper
  path = os.path.join(folder, "model.bin")
  name, v = read_ct2(path)
  if name != "WhisperSpec":
    raise CheckpointFileError(f"{path}: a CTranslate2 {name}, not a Whisper "
                              "model")
  if any(k.endswith("weight_scale") and k.startswith("encoder/") for k in v):
    raise CheckpointFileError(
        f"{path}: int8-quantised weights; convert the model again with "
        "ct2-transformers-converter --quantization float16 (or float32)")
  def f32(k):
    if k not in v:
      raise CheckpointFileError(f"{path}: the variable {k} is missing (not a "
                                "complete Whisper model)")
    return np.asarray(v[k], np.float32)

  n = 0
  while f"encoder/layer_{n}/ffn/linear_0/weight" in v:
    n += 1
  d = v["encoder/conv1/weight"].shape[0]
  params = {"conv1.weight": f32("encoder/conv1/weight"),
            "conv1.bias": f32("encoder/conv1/bias"),
            "conv2.weight": f32("encoder/conv2/weight"),
            "conv2.bias": f32("encoder/conv2/bias"),
            "embed_positions.weight": f32(
                "encoder/position_encodings/encodings"),
            "layer_norm.weight": f32("encoder/layer_norm/gamma"),
            "layer_norm.bias": f32("encoder/layer_norm/beta")}
  for i in range(n):
    p, q = f"encoder/layer_{i}/", f"layers.{i}."
    qkv_w = f32(p + "self_attention/linear_0/weight")
    qkv_b = f32(p + "self_attention/linear_0/bias")
    for j, proj in enumerate(("q_proj", "k_proj", "v_proj")):
      params[q + f"self_attn.{proj}.weight"] = qkv_w[j * d:(j + 1) * d]
      if proj != "k_proj":
        params[q + f"self_attn.{proj}.bias"] = qkv_b[j * d:(j + 1) * d]
    for ours, theirs in (("self_attn.out_proj", "self_attention/linear_1"),
                         ("fc1", "ffn/linear_0"), ("fc2", "ffn/linear_1")):
      params[q + ours + ".weight"] = f32(p + theirs + "/weight")
      params[q + ours + ".bias"] = f32(p + theirs + "/bias")
    for ours, theirs in (("self_attn_layer_norm", "self_attention/layer_norm"),
                         ("final_layer_norm", "ffn/layer_norm")):
      params[q + ours + ".weight"] = f32(p + theirs + "/gamma")
      params[q + ours + ".bias"] = f32(p + theirs + "/beta")
  heads = int(np.asarray(v.get("encoder/num_heads", d // 64)).reshape(-1)[0])
  cfg = whisper.Config(
      n_mels=v["encoder/conv1/weight"].shape[1], d_model=d, layers=n,
      heads=heads, ffn=v["encoder/layer_0/ffn/linear_0/weight"].shape[0],
      max_positions=v["encoder/position_encodings/encodings"].shape[0])
  return Loaded("whisper", cfg, _build(whisper, cfg, params, path), folder,
                _digest([path]))


def load(path: str, family: str = "") -> Loaded:
  """The encoder in `path` (a folder), by what the folder holds; with
  `family`, a folder holding another family is an error."""
  enc = _load(path)
  if family and enc.family != family:
    raise CheckpointFileError(f"{path}: holds a {enc.family} encoder, not "
                              f"{family} (config encoder.family)")
  return enc


def _load(path: str) -> Loaded:
  folder = os.path.abspath(os.path.expanduser(path))
  if os.path.isfile(folder) and folder.endswith(".pt"):
    return _openai_whisper(folder)
  if not os.path.isdir(folder):
    raise CheckpointFileError(f"{path}: no such folder (an encoder is a "
                              "folder with config.json and model.safetensors "
                              "or pytorch_model.bin, CTranslate2's model.bin, "
                              "or OpenAI's Whisper .pt file)")
  if os.path.exists(os.path.join(folder, "model.bin")):
    return _ct2_whisper(folder)
  cfg_path = os.path.join(folder, "config.json")
  if not os.path.exists(cfg_path):
    raise CheckpointFileError(f"{cfg_path}: no such file (a Hugging Face "
                              "folder needs config.json and model.safetensors)")
  with open(cfg_path) as f:
    cfg = json.load(f)
  kind = cfg.get("model_type")
  if kind == "whisper":
    return _hf_whisper(folder, cfg)
  from fser_jax.encoders import wav2vec2
  if kind in wav2vec2.FAMILIES:
    return _hf_wav2vec2(folder, cfg)
  raise CheckpointFileError(
      f"{cfg_path}: model_type {kind!r} is not supported here (supported: "
      f"whisper, {', '.join(wav2vec2.FAMILIES)})")
