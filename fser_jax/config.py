"""The configuration every run starts from, and its checks.

Config files in configs/ call `base()` and change what their recipe needs;
`python launch.py --config configs/X.py --config.train.num_epochs=3` overrides
any key (ml_collections refuses unknown keys and wrong types, naming them).
"""

from __future__ import annotations

import ml_collections

from fser_jax.errors import UserError


class ConfigError(UserError, ValueError):
  """A config value no run can use; the message names the key."""


def base() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0  # model init, dropout and augmentation (not the split)
  # Fit fser_jax/evaluation/linear.py (per-clip statistics -> logistic regression)
  # on the same split and report it beside the model.
  c.baseline = True

  c.data = ml_collections.ConfigDict()
  c.data.dataset = "fser/synthetic"  # 'fser/<config>' or 'own'
  c.data.data_dir = ""  # TFDS data dir ('' = ~/tensorflow_datasets)
  c.data.manual_dir = ""  # corpora folder, to build a dataset on first use
  # Build on Apache Beam: pipeline options as the TFDS CLI's
  # --beam_pipeline_options, e.g. 'direct_num_workers=4,direct_running_mode=
  # multi_processing' (or runner=DataflowRunner,...); '' builds in-process.
  c.data.beam_options = ""
  # Training input: 'on' reads the training clips from the dataset as steps
  # need them (bounded memory; ArrayRecord files, fser_jax/data/stream.py),
  # 'off' holds every clip in memory, 'auto' streams when memory would not
  # hold the in-memory path (the log says which and why).
  c.data.stream = "auto"
  c.data.own_path = ""  # own data: folder of label subfolders or CSV manifest
  # The manifest's own column names: 'path=file,label=emotion,speaker=talker'
  # (launch.py --columns sets it).
  c.data.columns = ""
  c.data.sample_rate = 16000
  c.data.protocol = "paper"  # 'paper' | 'speaker' | 'corpus' | 'cross' | 'file'
  c.data.split_file = ""  # protocol 'file': CSV filename,split
  c.data.fold = 0
  c.data.num_folds = 0  # speaker folds; 0 = LOSO up to 6 speakers, else 6
  c.data.split_seed = 0
  c.data.test_fraction = 0.2
  c.data.val_fraction = 0.2

  c.features = ml_collections.ConfigDict()
  # 'rgb' (paper: coolwarm image) | 'logmel' | 'logmel_time' (time at the
  # hop's rate, not stretched; fixed dB reference; clips tiled to `frames`
  # columns; the model averages over time: configs/fser_plus.py)
  c.features.kind = "rgb"
  c.features.frames = 128  # logmel_time's training window (x hop: 4.1 s)
  c.features.n_fft = 512
  c.features.hop_length = 512
  c.features.n_mels = 128
  c.features.top_db = 80.0
  c.features.image_size = 64
  c.features.colormap = "coolwarm"
  # Standardise inputs per channel with training-set mean/std (one affine map
  # for every clip: keeps loudness). Without it the RGB image's [0, 1] values
  # leave SGD at chance for tens of epochs (configs/fser_fast.py).
  c.features.standardize = True
  # Whose statistics standardise a clip: 'global' (the training split's),
  # 'speaker' or 'corpus' (each speaker's / corpus' own clips, test ones
  # included: audio only, no labels).
  c.features.normalize = "global"

  c.augment = ml_collections.ConfigDict()
  c.augment.width_shift = 0.1
  c.augment.height_shift = 0.1
  c.augment.zoom = 0.1
  # SpecAugment (Park et al., 2019): bands of columns (time) and rows
  # (frequency) per training image, each up to mask_width of its axis, set
  # to 0; for the log-mel front-ends.
  c.augment.time_masks = 0
  c.augment.freq_masks = 0
  c.augment.mask_width = 0.1
  c.augment.horizontal_flip = True
  c.augment.offline_copies = 0  # >0: the paper's Algorithm 1 (fixed copies)
  # The recording's channel on the training waveforms, before the front-end
  # (fser_jax/frontend/wave_augment.py); every probability 0 = off (the paper had none).
  c.augment.wave = ml_collections.ConfigDict()
  w = c.augment.wave
  w.noise_prob = 0.0
  w.noise_snr_db = (0.0, 20.0)  # uniform SNR range
  w.noise_kinds = ("white", "pink")
  w.noise_dir = ""  # a folder of noise recordings: random excerpts, too
  w.phone_prob = 0.0  # 300-3400 Hz band-pass, 8 kHz
  w.phone_mu_law = True  # and 8-bit mu-law (G.711)
  w.gain_prob = 0.0
  w.gain_db = (-20.0, 10.0)
  w.clip = True  # clip at full scale after the gain
  w.speed_prob = 0.0
  w.speed = (0.9, 1.1)
  w.reverb_prob = 0.0
  w.reverb_rt60 = (0.2, 1.0)  # seconds, synthetic decaying-noise responses
  w.ir_dir = ""  # a folder of real impulse responses
  w.real_ir_share = 0.5  # of reverbed clips, when ir_dir is set

  c.model = ml_collections.ConfigDict()
  c.model.filters = (32, 64, 128, 256)
  c.model.kernel_size = 3
  c.model.conv_dropout = 0.25
  c.model.dense = (512, 256)
  c.model.dense_dropout = 0.5
  # 'bernoulli' (one draw per value) or 'packed' (fewer random bits per
  # value, a faster CPU step: docs/performance.md; an unexplained difference
  # in one extreme fine-tune keeps it off by default:
  # fser_jax.model.kernels.dropout).
  c.model.dropout_bits = "bernoulli"
  # Which key stream the dropout masks come from: 'step' (the train step's
  # dropout key, as always); 'folded' (that key folded with a constant:
  # another stream, equally valid) and 'rbg' (XLA's RngBitGenerator seeded
  # from it) exist for benchmarks/dropout_experiment.py, whose control arm
  # measures how much two valid streams differ.
  c.model.dropout_stream = "step"
  # How the convolutions are computed (same parameters and values, within
  # float32 rounding): 'auto' (the measured fastest for this backend and CPU,
  # fser_jax.cpu.xla.conv_impl) | 'xla' (lax.conv) | 'winograd' (Winograd
  # F(4x4,3x3) for layers with >= 64 input channels, the first layer one
  # matmul over its pooling phases) | 'im2col' (each layer one matmul) |
  # 'input_vjp' (the first layer im2col with a data-input VJP; others xla) |
  # 'onednn' (oneDNN's kernels inside the step, float32 or bfloat16; needs
  # libdnnl-dev, fser_jax/cpu/onednn.py) | 'winograd_onednn' (as 'winograd', the
  # other layers in oneDNN; in bfloat16 as 'onednn') | 'onednn_winograd'
  # (oneDNN's own Winograd for every 3x3 layer after the first, float32 on
  # AVX-512 with oneDNN 2.x; in bfloat16 as 'onednn')
  c.model.conv_impl = "auto"
  # features.kind='logmel_time': how the time axis is pooled before the
  # dense layers, 'mean' | 'mean_std' (statistics pooling)
  c.model.time_pool = "mean"

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 64
  c.train.num_epochs = 400
  c.train.optimizer = "sgd"  # 'sgd' | 'adam'
  c.train.learning_rate = 1e-3
  c.train.momentum = 0.0
  c.train.nesterov = False
  c.train.schedule = "constant"  # 'constant' | 'cosine'
  c.train.warmup_epochs = 0
  # Warmup in steps (added to warmup_epochs' steps): a small fine-tuning set
  # has epochs of one step, where an epoch count means almost no warmup.
  c.train.warmup_steps = 0
  c.train.weight_decay = 0.0
  # Clip each update's gradient to this global L2 norm (0 = off). A source
  # run that is confidently wrong on new data starts with huge logits and
  # gradients; clipping bounds the first steps (every recipe sets it).
  c.train.clip_grad_norm = 0.0
  # Linear probe, then fine-tune (Kumar et al., 2022): the first N steps
  # update only the output layer, then every layer (train.init_from runs).
  c.train.head_only_steps = 0
  c.train.precision = "float32"  # 'float32' | 'bfloat16' (compute)
  c.train.eval_every_epochs = 1
  c.train.steps_per_dispatch = 8  # train steps fused into one jitted scan
  c.train.checkpoint_every_epochs = 5
  c.train.max_checkpoints = 2
  c.train.num_steps = 0  # > 0: train this many steps (epochs follow from it)
  # Start from a trained run (fser_jax/train/transfer.py): its best checkpoint's
  # parameters; the output layer is re-initialised when the labels differ.
  c.train.init_from = ""
  c.train.init_from_norm = False  # keep the run's input statistics
  c.train.init_label_map = ""  # 'new=old,...' for the output layer's rows
  c.train.freeze = "none"  # 'none' | 'convs' | 'trunk' (all but the output)

  c.predict = ml_collections.ConfigDict()
  c.predict.window_seconds = 4.0
  c.predict.hop_seconds = 2.0

  # --mode learning_curve (fser_jax/experiments/learning_curve/curve.py).
  c.learning_curve = ml_collections.ConfigDict()
  c.learning_curve.shots = (5, 10, 20, 50, -1)  # clips per class; -1: all
  c.learning_curve.repeats = 3  # draws per k (nested across k)
  # Train steps per cell: learning_curve.epochs over the cell's clips,
  # within [min_steps, max_steps] (a budget fitted to k: a fixed count
  # over-trains 5 clips per class and under-trains 50). steps > 0: that
  # many steps for every cell.
  c.learning_curve.steps = 0
  c.learning_curve.epochs = 40
  c.learning_curve.min_steps = 60
  c.learning_curve.max_steps = 240
  c.learning_curve.batch_size = 32  # or fewer: the cell's clip count
  # Arms (fser_jax/experiments/learning_curve/curve.py): 'baseline' (per-clip
  # statistics, and their per-speaker twin), 'probe' (the source run's
  # embedding alone and beside the statistics, and their twins), 'scratch'
  # and 'finetune' (CNN cells: off by default, reported but never chosen;
  # why: docs/learning_curve.md).
  c.learning_curve.arms = ("baseline", "probe")
  # How the arm to use is chosen at each k, on each draw's labelled clips by
  # speaker-held-out cross-validation: 'one_se' (the simplest arm within one
  # standard error of the best) or 'best'.
  c.learning_curve.choice_rule = "one_se"
  # From this many clips per class on, each linear arm's settings (feature
  # set, C, an encoder's layer, a fusion weight) are searched by
  # cross-validation; below it they are fixed (evaluation/linear.py
  # `fixed`), since a few dozen clips cannot choose them. The threshold is
  # measured on the shift suite (docs/results/curve_policies.md): searching
  # from k = 20 or 50 lost to fixed settings in some sets, so the default
  # is above every k measured there.
  c.learning_curve.search_from = 1000
  # Below this many clips per class no arm is chosen: the default arm
  # (`baseline_speaker` where the clips name speakers, else `baseline`) is
  # used, and every other arm is still scored beside it. Measured with
  # search_from: docs/results/curve_policies.md.
  c.learning_curve.choose_from = 50
  # A source run (train.init_from) that trained on a clip of the curve's test
  # speakers is refused; True runs the curve anyway, said in its report.
  c.learning_curve.allow_source_overlap = False
  # eGeMAPS (openSMILE; pip install fser_jax[egemaps], audEERING's research
  # licence) as a second baseline: arms 'egemaps' and 'egemaps_speaker'.
  c.learning_curve.egemaps = False
  # The finetune arm's recipe (chosen on the embedded stand-in recordings,
  # docs/learning_curve.md): learning rate, linear-probe steps first, clip.
  c.learning_curve.finetune_learning_rate = 0.005
  c.learning_curve.finetune_head_only_steps = 20
  c.learning_curve.finetune_clip_grad_norm = 5.0
  c.learning_curve.test_fraction = 0.25  # without speakers: stratified
  # The zero-shot arm's data label -> run class (launch.py --label_map).
  c.learning_curve.label_map = ""

  # A pretrained speech encoder the user has (fser_jax/encoders): a folder
  # with config.json + model.safetensors, or CTranslate2's model.bin. The
  # learning curve then gains the arms 'encoder' (every layer's mean and
  # std, the layer chosen by cross-validation) and 'encoder+baseline'.
  c.encoder = ml_collections.ConfigDict()
  c.encoder.path = ""
  # '' reads the family from the folder; naming one ('whisper', 'wavlm',
  # ...) makes a folder of another family an error.
  c.encoder.family = ""
  # The states a head chooses among by cross-validation: '' every one (0 is
  # the transformer's input), or '6,7,8' / '4-9'; their average ('mix') is
  # a candidate too. Pooling over positions: 'mean_std' or 'mean'.
  c.encoder.layers = ""
  c.encoder.pooling = "mean_std"
  c.encoder.batch_size = 8  # clips per call, padded to a multiple of 1 s
  # Clips per part file of the states' store (launch.py --mode embed, the
  # curve): what a killed extraction can lose, and the audio in memory.
  c.encoder.chunk = 64
  # --mode train makes a linear head on the encoder's states instead of the
  # CNN (fser_jax/runs/head.py, configs/encoder_head.py): a run directory that
  # evaluate, predict and robustness use like any other.
  c.encoder.head = False

  c.mesh = ml_collections.ConfigDict()
  c.mesh.num_devices = 0  # data-parallel devices; 0 = every local device
  # Several processes from the cluster's environment (SLURM, MPI, k8s):
  # launch.py calls jax.distributed.initialize() (fser_jax/train/distributed.py).
  c.mesh.distributed = False
  return c


def complete(saved: dict) -> ml_collections.ConfigDict:
  """A run's saved config (its config.json) over the base: a key added to
  the library after the run was saved gets its default, the behaviour the
  run had. Two exceptions: `features.standardize` came after runs in which
  log-mel images were standardised and the paper's RGB ones were not, and
  `model.dropout_bits` after runs that drew packed dropout bits.
  Every reader of a run directory goes through this (rundir.read_config),
  so the code reads every key as an attribute."""
  def merge(into: dict, d: dict) -> dict:
    for k, v in d.items():
      if isinstance(v, dict) and isinstance(into.get(k), dict):
        merge(into[k], v)
      else:
        into[k] = v
    return into
  merged = merge(base().to_dict(), saved)
  features = saved.get("features", {})
  if "standardize" not in features:
    merged["features"]["standardize"] = features.get("kind") == "logmel"
  if "dropout_bits" not in saved.get("model", {}):  # runs saved with packed
    merged["model"]["dropout_bits"] = "packed"
  return ml_collections.ConfigDict(merged)


def flatten(d: dict, prefix: str = "") -> dict:
  """A config's JSON dict as {'section.key': value} (sequences as lists),
  to compare two configs key by key."""
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = list(v) if isinstance(v, (tuple, list)) else v
  return out


CHOICES = {
    "data.protocol": ("paper", "speaker", "corpus", "cross", "file"),
    "train.freeze": ("none", "convs", "trunk"),
    "features.kind": ("rgb", "logmel", "logmel_time"),
    "features.normalize": ("global", "speaker", "corpus"),
    "train.optimizer": ("sgd", "adam"),
    "train.schedule": ("constant", "cosine"),
    "train.precision": ("float32", "bfloat16"),
    "model.conv_impl": ("auto", "xla", "winograd", "im2col", "input_vjp",
                        "onednn", "winograd_onednn", "onednn_winograd"),
    "model.time_pool": ("mean", "mean_std"),
    "model.dropout_bits": ("bernoulli", "packed"),
    "model.dropout_stream": ("step", "folded", "rbg"),
    "learning_curve.choice_rule": ("one_se", "best"),
}


def apply_flags(config, *, columns: str = "", label_map: str = "") -> None:
  """launch.py's --columns and --label_map, one flag for every mode: they set
  `data.columns` and `learning_curve.label_map`; a config that already sets
  either to something else is refused (two answers to one question)."""
  for flag, key, value in (("--columns", "data.columns", columns),
                           ("--label_map", "learning_curve.label_map",
                            label_map)):
    if not value:
      continue
    group, name = key.split(".")
    old = config[group][name]
    if old and old != value:
      raise ConfigError(f"{flag}={value} and config {key}={old!r} disagree; "
                        "give one of them")
    config[group][name] = value


def validate(c: ml_collections.ConfigDict) -> None:
  """Refuses values no run can use, naming the key."""
  for key, allowed in CHOICES.items():
    section, name = key.split(".")
    value = c[section][name]
    if value not in allowed:
      raise ConfigError(f"config {key}={value!r}: expected one of {allowed}")
  positive = ["train.batch_size", "train.num_epochs", "train.learning_rate",
              "train.eval_every_epochs", "train.steps_per_dispatch",
              "features.n_fft", "features.hop_length", "features.n_mels",
              "features.image_size", "features.frames", "data.sample_rate",
              "train.checkpoint_every_epochs", "train.max_checkpoints"]
  for key in positive:
    section, name = key.split(".")
    if not c[section][name] > 0:
      raise ConfigError(f"config {key}={c[section][name]!r} must be positive")
  for key in ("augment.time_masks", "augment.freq_masks"):
    section, name = key.split(".")
    if c[section][name] < 0:
      raise ConfigError(f"config {key}={c[section][name]!r} must be >= 0")
  for key in ("features.image_size", "features.frames"):  # rows, columns
    section, name = key.split(".")
    if c[section][name] % (2 ** len(c.model.filters)):
      raise ConfigError(f"config {key}={c[section][name]} must be divisible "
                        "by 2**len(model.filters)")
  for key in ("augment.width_shift", "augment.height_shift", "augment.zoom",
              "augment.mask_width", "model.conv_dropout",
              "model.dense_dropout"):
    section, name = key.split(".")
    if not 0 <= c[section][name] < 1:
      raise ConfigError(f"config {key}={c[section][name]!r} must be in [0, 1)")
  if c.train.freeze != "none" and not c.train.init_from:
    raise ConfigError(f"config train.freeze={c.train.freeze!r} needs "
                      "train.init_from (frozen random layers learn nothing)")
  if c.train.head_only_steps and not c.train.init_from:
    raise ConfigError(f"config train.head_only_steps="
                      f"{c.train.head_only_steps} needs train.init_from (a "
                      "random trunk held still learns nothing)")
  for key in ("train.clip_grad_norm", "train.warmup_steps",
              "train.head_only_steps"):
    section, name = key.split(".")
    if c[section].get(name, 0) < 0:
      raise ConfigError(f"config {key}={c[section][name]!r} must be >= 0")
  if c.augment.offline_copies < 0:
    raise ConfigError("config augment.offline_copies must be >= 0")
  w = c.augment.wave
  if w is not None:
    for name in ("noise_prob", "phone_prob", "gain_prob", "speed_prob",
                 "reverb_prob", "real_ir_share"):
      if not 0 <= w[name] <= 1:
        raise ConfigError(f"config augment.wave.{name}={w[name]!r} must be a "
                          "probability in [0, 1]")
    for name in ("noise_snr_db", "gain_db", "speed", "reverb_rt60"):
      lo, hi = w[name]
      if lo > hi:
        raise ConfigError(f"config augment.wave.{name}={tuple(w[name])}: "
                          "expected (low, high)")
    if not 0 < w.speed[0] and w.speed_prob:
      raise ConfigError("config augment.wave.speed must be positive")
    if w.reverb_prob and not 0 < w.reverb_rt60[0]:
      raise ConfigError("config augment.wave.reverb_rt60 must be positive")
    unknown = set(w.noise_kinds) - {"white", "pink"}
    if unknown:
      raise ConfigError(f"config augment.wave.noise_kinds: unknown "
                        f"{sorted(unknown)}; 'white' and 'pink' (a folder: "
                        "augment.wave.noise_dir)")
    if w.noise_prob and not (tuple(w.noise_kinds) or w.noise_dir):
      raise ConfigError("config augment.wave.noise_prob > 0 needs a noise: "
                        "augment.wave.noise_kinds or augment.wave.noise_dir")
    wave_on = any(w[k] for k in ("noise_prob", "phone_prob", "gain_prob",
                                 "speed_prob", "reverb_prob"))
    if wave_on and c.augment.offline_copies:
      raise ConfigError("config augment.wave needs on-the-fly augmentation; "
                        "set augment.offline_copies=0")
