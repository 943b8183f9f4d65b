"""The one way from audio to probabilities for a trained run.

Every mode that uses a trained run (predict, evaluate, the learning curve's
zero-shot arm, fine-tuning's initial parameters) loads it with `TrainedRun`
and classifies waveforms with `TrainedRun.classify`: the run's own saved
front-end config, its normalisation statistics, its best checkpoint, and the
same windowing (clips longer than `predict.window_seconds` are cut into
windows every `predict.hop_seconds`; a clip's probabilities are its windows'
mean). Windows of many clips are batched together, and the network's trunk
runs once per window for both outputs (class probabilities and the
familiarity embedding).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os

import numpy as np

from fser_jax.frontend import audio as audio_lib
from fser_jax.evaluation import calibration
from fser_jax.evaluation import familiarity
from fser_jax.frontend import spectrogram as features_lib
from fser_jax.frontend import normalisation
from fser_jax.model import forward
from fser_jax.train import rundir
from fser_jax.errors import CheckpointError

BATCH = 64  # windows per forward pass
WINDOW_BLOCK = 512  # windows featurised at a time
STREAM_SECONDS = 600.0  # longer files are streamed (`classify_stream`)


def clip_windows(predict_cfg, rate: int, wav: np.ndarray
                 ) -> list[tuple[int, np.ndarray]]:
  """(start, samples) of a clip's windows: predict.window_seconds every
  predict.hop_seconds (a shorter clip: itself)."""
  return audio_lib.frame_windows(wav, int(predict_cfg.window_seconds * rate),
                                 int(predict_cfg.hop_seconds * rate))


@dataclasses.dataclass
class Outputs:
  """Per-clip results of `TrainedRun.classify`."""
  probs: np.ndarray  # [N, C] mean of the clip's windows' probabilities
  distance: np.ndarray | None  # [N] mean of the windows' familiarity distances
  window_probs: list[np.ndarray]  # N arrays [W_i, C]
  window_distance: list[np.ndarray] | None  # N arrays [W_i]
  window_starts: list[list[int]]  # N lists of start samples
  window_lengths: list[list[int]]
  # [N, D] mean of the windows' embeddings: the last hidden layer, then the
  # pooled convolution blocks (linear probes)
  embedding: np.ndarray | None = None


@dataclasses.dataclass
class Windows:
  """Raw network outputs of every window of some clips (before the
  temperature and the familiarity model): `TrainedRun.window_outputs`."""
  logits: np.ndarray  # [W, C]
  hidden: np.ndarray  # [W, H] last hidden layer
  blocks: np.ndarray  # [W, E] pooled convolution blocks
  bounds: np.ndarray  # [N + 1] clip i's windows are bounds[i]:bounds[i + 1]
  starts: list[list[int]]  # N lists of start samples
  lengths: list[list[int]]

  def clip_of_window(self) -> np.ndarray:
    """[W] the clip each window belongs to."""
    return np.repeat(np.arange(len(self.starts)), np.diff(self.bounds))

  @staticmethod
  def concat(parts: list["Windows"]) -> "Windows":
    """The windows of several groups of clips, one after the other."""
    counts = np.concatenate([np.diff(p.bounds) for p in parts])
    return Windows(*(np.concatenate([getattr(p, f) for p in parts])
                     for f in ("logits", "hidden", "blocks")),
                   bounds=np.concatenate([[0], np.cumsum(counts)]),
                   starts=[s for p in parts for s in p.starts],
                   lengths=[s for p in parts for s in p.lengths])

  def take(self, clips) -> "Windows":
    """The windows of `clips` (clip indices), in that order."""
    clips = np.asarray(clips, np.int64)
    rows = (np.concatenate([np.arange(self.bounds[c], self.bounds[c + 1])
                            for c in clips]) if clips.size
            else np.zeros(0, np.int64))
    counts = np.diff(self.bounds)[clips]
    return Windows(self.logits[rows], self.hidden[rows], self.blocks[rows],
                   np.concatenate([[0], np.cumsum(counts)]),
                   [self.starts[c] for c in clips],
                   [self.lengths[c] for c in clips])


class TrainedRun:
  """A trained run (its config, classes, normalisation and best parameters)
  ready to classify waveforms on this machine's first device."""

  def __init__(self, workdir: str, *, trust: bool = True):
    """Args:
      trust: load the run's familiarity model and calibration (False: raw
        probabilities, T = 1, no distances; what the report fits them on).
    """
    self.workdir = workdir
    self.config = rundir.read_config(workdir)
    norm = rundir.read_normalisation(workdir)
    self.classes = list(norm["classes"])
    self.norm = (norm["mean"], norm["std"])  # per channel, training split
    self.normalize = norm["normalize"]  # 'global' | 'speaker' | 'corpus'
    self._load_network()
    self._load_trust(trust)

  def _load_network(self) -> None:
    """The network's parameters (best checkpoint) and the rate it reads."""
    c = self.config
    self.sample_rate = int(c.data.sample_rate)
    self.graphdef, self.params, self.step = rundir.restore_params(
        self.workdir, c, len(self.classes))
    self._infer = forward.make_infer_fn(self.graphdef)

  def _load_trust(self, trust: bool) -> None:
    """The run's familiarity model and calibration (temperature, selective
    thresholds; runs saved before it: T = 1), or none without `trust`."""
    self.familiarity, self.calibration, self.temperature = None, None, 1.0
    if trust:
      fam_path = os.path.join(self.workdir, rundir.FAMILIARITY)
      if os.path.exists(fam_path):
        self.familiarity = familiarity.load(fam_path)
      self.calibration = calibration.load(self.workdir)
      if self.calibration:
        self.temperature = self.calibration["temperature"]

  # --- stages ------------------------------------------------------------------
  def load_audio(self, path: str) -> np.ndarray:
    """A file at the run's rate (AudioError names the file and the fault)."""
    return audio_lib.load_audio(path, self.sample_rate,
                                min_samples=self.config.features.n_fft)

  def windows(self, wav: np.ndarray) -> list[tuple[int, np.ndarray]]:
    return clip_windows(self.config.predict, self.sample_rate, wav)

  def raw_inputs(self, waveforms: list[np.ndarray]) -> np.ndarray:
    """What the network reads, before standardisation: the front-end's
    images."""
    return features_lib.compute_images(waveforms, self.config.features,
                                       self.sample_rate, batch_size=BATCH)

  def images(self, waveforms: list[np.ndarray]) -> np.ndarray:
    """The model's inputs standardised with the training split's statistics
    (a run trained with features.normalize='global')."""
    return normalisation.standardise(self.raw_inputs(waveforms), self.norm)

  def groups_for(self, meta: dict | None, n: int):
    """The normalisation groups `classify` needs for clips with metadata
    `meta` (speaker, corpus): None for a 'global' run; else each clip's
    speaker (or corpus), all clips one group when the metadata has none."""
    if self.normalize == "global":
      return None
    meta = meta or {}
    speaker = np.asarray(meta.get("speaker", [""] * n), object)
    corpus = np.asarray(meta.get("corpus", [""] * n), object)
    return normalisation.norm_groups({"speaker": speaker, "corpus": corpus},
                                      self.normalize).tolist()

  def forward(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(calibrated probabilities [N, C], familiarity distances [N] or
    None) of standardised images. Calibrated: softmax(logits / T), the
    run's fitted temperature."""
    logits, hidden, _ = self.network(images)
    return self.trust(logits, hidden)

  def network(self, images: np.ndarray):
    """(logits [N, C], last hidden layer [N, H], pooled conv blocks [N, E])
    of standardised images: one trunk pass (fser_jax.model.cnn.FSER.embed_all)."""
    logits, hidden, blocks = forward.predict_logits(self._infer, self.params,
                                                    images, BATCH)
    return (np.asarray(logits, np.float32), np.asarray(hidden, np.float32),
            np.asarray(blocks, np.float32))

  def trust(self, logits: np.ndarray, hidden: np.ndarray):
    """(calibrated probabilities, familiarity distances or None)."""
    dist = (None if self.familiarity is None
            else familiarity.distance(self.familiarity, hidden))
    return (calibration.softmax(logits, self.temperature).astype(np.float32),
            dist)

  def confidence_threshold(self, coverage: float) -> float:
    """The calibrated max probability that kept `coverage` of the run's
    validation clips (fixed on validation, never on test)."""
    if not self.calibration or not self.calibration.get("val_confidence"):
      raise CheckpointError(f"{self.workdir}: no validation scores saved "
                            "(calibration.json); use --abstain_below prob=P")
    return calibration.threshold_for(self.calibration["val_confidence"],
                                     coverage)

  # --- the whole way -----------------------------------------------------------
  def window_outputs(self, waveforms: list[np.ndarray], groups="auto"
                     ) -> Windows:
    """Windows every clip and runs all windows through the front-end and
    the network in shared batches: the raw outputs `classify` aggregates.

    Args:
      groups: how inputs are standardised. None: the training split's
        statistics; a list (one id per clip): each group's own statistics,
        over its clips' windows (a speaker, a recording session; as
        features.normalize='speaker' in training); 'auto': None for a run
        trained with 'global', else all the clips given as one group.
    """
    starts, lengths, flat, owner = [], [], [], []
    for i, wav in enumerate(waveforms):
      ws = self.windows(wav)
      starts.append([s for s, _ in ws])
      lengths.append([w.size for _, w in ws])
      flat += [w for _, w in ws]
      owner += [i] * len(ws)
    bounds = np.cumsum([0] + [len(s) for s in starts])
    if not flat:
      k = len(self.classes)
      return Windows(np.zeros((0, k), np.float32), np.zeros((0, 1), np.float32),
                     np.zeros((0, 1), np.float32), bounds, starts, lengths)
    if isinstance(groups, str) and groups == "auto":
      groups = None if self.normalize == "global" else [0] * len(waveforms)
    if groups is None:
      # Blocks of windows: an hour-long recording (1800 windows) never holds
      # all its images at once.
      parts = [self.network(self.images(flat[i:i + WINDOW_BLOCK]))
               for i in range(0, len(flat), WINDOW_BLOCK)]
    else:
      # Group statistics need every window of the group first.
      raw = np.concatenate([self.raw_inputs(flat[i:i + WINDOW_BLOCK])
                            for i in range(0, len(flat), WINDOW_BLOCK)])
      window_groups = np.asarray([str(groups[i]) for i in owner], object)
      images = normalisation.standardise_clips(
          raw, normalisation.group_norms(raw, window_groups))
      parts = [self.network(images[i:i + WINDOW_BLOCK])
               for i in range(0, len(flat), WINDOW_BLOCK)]
    logits, hidden, blocks = (np.concatenate(p) for p in zip(*parts))
    return Windows(logits, hidden, blocks, bounds, starts, lengths)

  def window_outputs_read(self, read, positions, groups="auto",
                          chunk: int | None = None) -> Windows:
    """`window_outputs` of the clips at `positions`, read by `read`
    (positions -> waveforms) `chunk` clips at a time, so a training split
    larger than memory is never held. With groups, each chunk holds whole
    groups (a group's statistics need all its windows)."""
    positions = np.asarray(positions)
    n = positions.size
    if isinstance(groups, str) and groups == "auto":
      groups = None if self.normalize == "global" else [0] * n
    if not chunk or n <= chunk:
      return self.window_outputs(read(positions), groups)
    if groups is None:
      pieces = [np.arange(s, min(n, s + chunk)) for s in range(0, n, chunk)]
    else:
      g = np.asarray([str(x) for x in groups], object)
      pieces, cur = [], np.zeros(0, np.int64)
      for key in sorted(set(g.tolist())):
        members = np.flatnonzero(g == key)
        if cur.size and cur.size + members.size > chunk:
          pieces.append(cur)
          cur = np.zeros(0, np.int64)
        cur = np.concatenate([cur, members])
      pieces.append(cur)
    parts = [self.window_outputs(
        read(positions[p]), None if groups is None else [groups[i] for i in p])
             for p in pieces]
    return Windows.concat(parts).take(np.argsort(np.concatenate(pieces)))

  def aggregate(self, w: Windows) -> Outputs:
    """Per-clip outputs from window outputs: each clip's probabilities are
    its windows' calibrated probabilities' mean; its distance and
    embedding, its windows' means."""
    n = len(w.starts)
    if n == 0 or w.logits.shape[0] == 0:
      return Outputs(np.zeros((0, len(self.classes)), np.float32), None, [],
                     None, [], [])
    probs, dist = self.trust(w.logits, w.hidden)
    emb = np.concatenate([w.hidden, w.blocks], 1)
    cut = lambda a: [a[x:y] for x, y in zip(w.bounds[:-1], w.bounds[1:])]
    wp, wd = cut(probs), None if dist is None else cut(dist)
    return Outputs(
        probs=np.stack([p.mean(0) for p in wp]),
        distance=None if wd is None else np.array([d.mean() for d in wd]),
        window_probs=wp, window_distance=wd, window_starts=w.starts,
        window_lengths=w.lengths,
        embedding=np.stack([e.mean(0) for e in cut(emb)]))

  def classify(self, waveforms: list[np.ndarray], groups="auto") -> Outputs:
    """The one way from clips to probabilities: `window_outputs`, then
    `aggregate` (see window_outputs for `groups`)."""
    return self.aggregate(self.window_outputs(waveforms, groups))

  def classify_stream(self, path: str, own_statistics: bool | None = None
                      ) -> Outputs:
    """`classify` of one long recording, read, resampled, windowed and
    classified block by block (`BATCH` windows at a time), so that memory
    stays bounded whatever the file's length: an hour is 1800 windows, whose
    samples alone would take 460 MB at 16 kHz.

    Args:
      own_statistics: standardise with the recording's own windows'
        statistics (as 'file' normalisation; computed in a first streamed
        pass) instead of the training split's. None: as `classify`'s 'auto'
        (own statistics for a run trained with speaker / corpus statistics).
    """
    p = self.config.predict
    win = int(p.window_seconds * self.sample_rate)
    hop = int(p.hop_seconds * self.sample_rate)

    def blocks():  # lists of (start, samples), BATCH windows each
      out = []
      for w in audio_lib.stream_windows(
          audio_lib.stream(path, self.sample_rate), win, hop):
        out.append(w)
        if len(out) == BATCH:
          yield out
          out = []
      if out:
        yield out

    if own_statistics is None:
      own_statistics = self.normalize != "global"
    norm = self.norm
    if own_statistics:  # first pass: the recording's per-channel statistics
      total = total_sq = 0.0
      count = 0
      for b in blocks():
        raw = self.raw_inputs([x for _, x in b]).astype(np.float64)
        flat = raw.reshape(-1, raw.shape[-1])
        total, total_sq = total + flat.sum(0), total_sq + (flat ** 2).sum(0)
        count += flat.shape[0]
      mean = total / count
      norm = (mean, np.sqrt(np.maximum(total_sq / count - mean ** 2, 0)) + 1e-6)
    starts, lengths, probs, dists = [], [], [], []
    for b in blocks():
      images = normalisation.standardise(
          self.raw_inputs([x for _, x in b]), norm).astype(np.float32)
      pr, d = self.forward(images)
      starts += [s for s, _ in b]
      lengths += [x.size for _, x in b]
      probs.append(pr)
      dists.append(d)
    wp = np.concatenate(probs)
    wd = None if dists[0] is None else np.concatenate(dists)
    return Outputs(probs=wp.mean(0, keepdims=True),
                   distance=None if wd is None else np.array([wd.mean()]),
                   window_probs=[wp], window_distance=None if wd is None
                   else [wd], window_starts=[starts], window_lengths=[lengths])


class EncoderHeadRun(TrainedRun):
  """A run whose network is a linear head on a frozen pretrained encoder's
  states (fser_jax/runs/head.py trains it): the same windows, normalisation
  groups, calibration, familiarity and aggregation as any run; its
  "images" are each window's pooled states of the chosen layer (mean and
  std over positions), its logits a linear map of them."""

  def __init__(self, workdir: str, *, trust: bool = True, store=None):
    """Args:
      store: an encoders.extract.Store keeping the states per window (the
        training report's windows are computed once); None: computed.
    """
    self.store = store
    super().__init__(workdir, trust=trust)

  def _load_network(self) -> None:
    """The head's linear map, and the encoder it was trained on (refused
    when its weights differ)."""
    from fser_jax import encoders
    workdir, c = self.workdir, self.config
    with np.load(rundir.path(workdir, rundir.HEAD)) as h:
      self.head = {k: h[k] for k in h.files}
    self.layer = int(self.head["layer"])
    self.step = 0  # no training steps: a closed-form head
    self.encoder = encoders.from_config(c.encoder)
    want = str(self.head["encoder_digest"])
    if self.encoder.digest != want:
      raise CheckpointError(
          f"{workdir}: the encoder at {c.encoder.path} is not the one this "
          f"head was trained on (weights sha1 {self.encoder.digest}, trained "
          f"with {want}); train the head again or point config.encoder.path "
          "at those weights")
    self.sample_rate = self.encoder.sample_rate

  def load_audio(self, path: str) -> np.ndarray:
    return audio_lib.load_audio(path, self.sample_rate, min_samples=400)

  def states(self, waveforms: list[np.ndarray]) -> np.ndarray:
    """[N, layers + 1, 2 d] every layer's pooled states of 16 kHz clips
    (through the store when the run has one)."""
    if self.store is None:
      return self.encoder.pooled(waveforms,
                                 batch=int(self.config.encoder.batch_size))
    from fser_jax.encoders import extract
    keys, _ = extract.extract(self.encoder, waveforms, self.store,
                              batch=int(self.config.encoder.batch_size))
    return self.store.read(keys)

  def raw_inputs(self, waveforms: list[np.ndarray]) -> np.ndarray:
    """[N, D]: the chosen state's (a layer, or the layers' mix) pooled
    states, as config.encoder.layers / pooling made the candidates."""
    from fser_jax.encoders import pooling
    blocks, _ = pooling.candidates(self.states(waveforms),
                                   self.config.encoder.layers,
                                   self.config.encoder.pooling)
    return blocks[:, self.layer]

  def network(self, x: np.ndarray):
    """(logits, hidden, embedding) of normalised features: the head's
    linear map; hidden: the features as the head's scaler standardises
    them (familiarity's space)."""
    h = self.head
    z = ((x - h["scaler_mean"]) / h["scaler_scale"]).astype(np.float32)
    logits = (x @ h["weight"] + h["bias"]).astype(np.float32)
    return logits, z, np.zeros((len(x), 0), np.float32)


def load_run(workdir: str, *, trust: bool = True) -> TrainedRun:
  """The trained run in `workdir`: a network's checkpoints, or a linear head
  on a pretrained encoder (fser_jax/runs/head.py); one interface for both."""
  if os.path.exists(rundir.path(workdir, rundir.HEAD)):
    return EncoderHeadRun(workdir, trust=trust)
  return TrainedRun(workdir, trust=trust)


class Long:
  """A recording longer than STREAM_SECONDS: not loaded here, but
  streamed block by block when its turn comes (bounded memory)."""


LONG = Long()


def load_many(run: TrainedRun, paths: list[str], workers: int = 4):
  """Yields (path, waveform or AudioError or LONG) in order, reading ahead."""
  def one(p):
    d = audio_lib.duration_seconds(p) if os.path.isfile(p) else None
    if d is not None and d > STREAM_SECONDS:
      return p, LONG
    try:
      return p, run.load_audio(p)
    except audio_lib.AudioError as e:
      return p, e
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    yield from pool.map(one, paths)
