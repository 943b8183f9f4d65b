"""Per-clip statistics: the linear baseline's features.

A clip's vector (computed once when the data is loaded, from the waveform at
the dataset's rate):
- log-mel, 40 bands (n_fft 1024, hop 256), dB with a *fixed* reference (1.0),
  so a recording's loudness survives: per band the mean, std, 10th and 90th
  percentiles and the slope over time;
- frame energy (RMS, dB): mean, std, percentiles, slope;
- pitch from librosa's YIN (60-500 Hz) on frames within 30 dB of the clip's
  loudest frame: mean, std, 10th/90th percentiles, range and slope of log2 f0,
  and the voiced share. YIN rather than pYIN: pYIN's HMM decodes a clean
  voicing track the statistics do not need, at a far higher cost;
- duration in seconds.
`COMPACT` names the 86 of the 213 that describe level and spread only; eGeMAPS
(openSMILE, optional) is the field's standard alternative. The classifier that
reads these is fser_jax/evaluation/linear.py.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

import numpy as np

N_MELS = 40
N_FFT = 1024
HOP = 256


def _stats(x: np.ndarray) -> np.ndarray:
  """Per row of x [R, T]: mean, std, p10, p90 and the least-squares slope
  over normalised time [0, 1] -> [R * 5]."""
  x = np.atleast_2d(np.asarray(x, np.float64))
  if x.shape[1] == 0:
    return np.zeros(x.shape[0] * 5)
  t = np.linspace(0.0, 1.0, x.shape[1])
  tc = t - t.mean()
  var = float(np.sum(tc ** 2))
  slope = (x - x.mean(1, keepdims=True)) @ tc / var if var else \
      np.zeros(x.shape[0])
  p10, p90 = np.percentile(x, [10, 90], axis=1)
  return np.stack([x.mean(1), x.std(1), p10, p90, slope], 1).reshape(-1)


_NUMBA_WARM = False  # this process has made its first of_clip call


@contextlib.contextmanager
def numba_first_call_lock():
  """Held around this process's first `of_clip` call. librosa's STFT,
  YIN and zero crossings compile numba gufuncs on first use and cache them
  on disk; two processes writing one gufunc's cache at once can leave a
  wrapper calling a kernel another process compiled, which then crashes
  every process that loads it (numba issue #10128; seen with two test
  workers). A machine-wide file lock makes the first compile one process
  at a time; later calls skip it. Without POSIX locks (fcntl), numba's own
  behaviour."""
  global _NUMBA_WARM
  try:
    import fcntl
  except ImportError:
    fcntl = None
  if _NUMBA_WARM or fcntl is None:
    yield
    return
  with open(os.path.join(tempfile.gettempdir(), "fser_jax_numba.lock"),
            "a") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)
  _NUMBA_WARM = True


def of_clip(wav: np.ndarray, sample_rate: int) -> np.ndarray:
  """The baseline's feature vector of one clip (float32)."""
  with numba_first_call_lock():
    return _of_clip(wav, sample_rate)


def _of_clip(wav: np.ndarray, sample_rate: int) -> np.ndarray:
  import librosa
  wav = np.asarray(wav, np.float32)
  if wav.size < N_FFT:
    wav = np.pad(wav, (0, N_FFT - wav.size))
  from fser_jax.frontend.spectrogram import mel_filterbank  # cached per rate
  power = np.abs(librosa.stft(wav, n_fft=N_FFT, hop_length=HOP)) ** 2
  mel = mel_filterbank(sample_rate, N_FFT, N_MELS) @ power
  db = 10.0 * np.log10(np.maximum(mel, 1e-10))  # fixed reference: 1.0
  feats = list(_stats(db))
  frames = librosa.util.frame(np.pad(wav, (N_FFT // 2, N_FFT // 2)),
                              frame_length=N_FFT, hop_length=HOP)
  energy = 10.0 * np.log10(np.maximum(np.mean(frames ** 2, axis=0), 1e-10))
  feats += list(_stats(energy))
  f0 = librosa.yin(wav, fmin=60, fmax=500, sr=sample_rate,
                   frame_length=N_FFT, hop_length=HOP)
  n = min(f0.size, energy.size)
  voiced = energy[:n] > energy.max() - 30.0
  lf0 = np.log2(f0[:n][voiced]) if voiced.any() else np.zeros(0)
  feats += list(_stats(lf0)) + [float(np.ptp(lf0)) if lf0.size else 0.0,
                 float(voiced.mean())]
  feats.append(wav.size / sample_rate)
  return np.asarray(feats, np.float32)


def of_clips(waveforms, sample_rate: int) -> np.ndarray:
  """[N, F] for a list of clips. Serial on purpose: librosa's YIN calls a
  numba gufunc whose first (compiling) call crashed with a segmentation
  fault when two threads made it at once (seen in a CI run)."""
  return np.stack([of_clip(w, sample_rate) for w in waveforms])


# The compact set: per band the mean and std (80), energy and log f0 mean
# and std, the voiced share and the duration (86 of the 213).
COMPACT = np.array([5 * b + j for b in range(N_MELS) for j in (0, 1)]
                   + [200, 201, 205, 206, 211, 212])


def egemaps(waveforms, sample_rate: int) -> np.ndarray:
  """[N, 88] eGeMAPS v02 functionals (Eyben et al., 2016), the field's
  standard small acoustic feature set, computed by audEERING's openSMILE
  (`pip install fser_jax[egemaps]`; its binary is under audEERING's research
  licence, free for research and education, not for commercial use).

  openSMILE runs in a fresh Python process: its library corrupts the heap
  ("malloc(): corrupted top size") in a process that has TensorFlow loaded,
  as every launch.py mode has."""
  try:
    import opensmile  # noqa: F401  (only to say how to get it)
  except ImportError:
    from fser_jax.errors import UserError
    raise UserError("eGeMAPS features need the opensmile package: pip install "
                    "'fser_jax[egemaps]' (audEERING's research licence: "
                    "research and education only)") from None
  import subprocess
  import sys
  import tempfile
  with tempfile.TemporaryDirectory() as tmp:
    src, dst = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npy")
    np.savez(src, *[np.asarray(w, np.float32) for w in waveforms])
    r = subprocess.run([sys.executable, "-c", _EGEMAPS_CHILD, src, dst,
                        str(int(sample_rate))], capture_output=True,
                       text=True)
    if r.returncode:
      raise RuntimeError("openSMILE's eGeMAPS extraction failed: "
                         + r.stderr.strip()[-500:])
    return np.load(dst)


# Run by `egemaps` in a child with nothing else loaded.
_EGEMAPS_CHILD = """
import sys
import numpy as np
import opensmile
smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                        feature_level=opensmile.FeatureLevel.Functionals)
clips = np.load(sys.argv[1])
rate = int(sys.argv[3])
out = [smile.process_signal(clips[f"arr_{i}"], rate).to_numpy()[0]
       for i in range(len(clips.files))]
np.save(sys.argv[2], np.stack(out).astype(np.float32))
"""
