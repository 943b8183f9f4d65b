"""Stage 1 of the data's way: audio files in, clean mono waveforms out.

Every entry point of the library (dataset builds, own-data manifests,
`--mode predict`) reads audio through `load_audio`, so a bad file gets the same
clear message everywhere: `AudioError` names the file and says what is wrong.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from fser_jax.errors import UserError


class AudioError(UserError, ValueError):
  """An audio file that cannot be used; the message names the file and the fault."""

  def __init__(self, path, problem: str):
    self.path = os.fspath(path)
    self.problem = problem
    super().__init__(f"{self.path}: {problem}")


# The faults `load_audio` and `stream` both report, in the same words.
NOT_FINITE = "contains NaN or Inf samples"
SILENT = "is silent (all samples are zero)"


def _undecodable(path, e: Exception) -> AudioError:
  return AudioError(path, f"cannot be decoded as audio ({type(e).__name__}: "
                    f"{e}); check that it is a complete, uncorrupted audio "
                    "file")


def load_audio(path, sample_rate: int, *, min_samples: int = 1,
               max_seconds: float | None = None) -> np.ndarray:
  """Reads any file libsndfile/audioread reads as mono float32 at `sample_rate`.

  Args:
    path: the audio file.
    sample_rate: the rate to resample to.
    min_samples: clips shorter than this (after resampling) are refused; the
      front-end needs at least one FFT window.
    max_seconds: longer files are refused (guards against feeding an hour-long
      recording to a dataset build by mistake); None for no limit.

  Returns:
    float32 array of shape [num_samples], values in [-1, 1].

  Raises:
    AudioError: the file is missing, a directory, empty, unreadable, silent,
      holds NaN/Inf samples, or is too short / too long.
  """
  import librosa  # Heavy import, kept local so `import fser_jax` stays fast.
  import soundfile as sf

  path = os.fspath(path)
  if os.path.isdir(path):
    raise AudioError(path, "is a directory, expected an audio file")
  if not os.path.exists(path):
    raise AudioError(path, "no such file")
  if os.path.getsize(path) == 0:
    raise AudioError(path, "file is empty (0 bytes)")
  if max_seconds is not None:
    try:
      info = sf.info(path)
      if info.duration > max_seconds:
        raise AudioError(
            path, f"is {info.duration:.0f} s long, over the {max_seconds:.0f} s "
            "limit; cut it into clips first (or use --mode predict, which "
            "windows long recordings)")
    except sf.LibsndfileError:
      pass  # Not a libsndfile format (mp3 via audioread): checked after load.
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")  # audioread fallback warnings
      wav, native_rate = librosa.load(path, sr=None, mono=False)
  except Exception as e:  # librosa raises many types for corrupt files.
    raise _undecodable(path, e) from None
  if wav.size == 0:
    raise AudioError(path, "decodes to zero samples (header without data?)")
  if not np.all(np.isfinite(wav)):
    raise AudioError(path, NOT_FINITE)
  wav = librosa.to_mono(wav)  # the mean of the channels
  if native_rate != sample_rate:
    wav = librosa.resample(wav, orig_sr=native_rate, target_sr=sample_rate,
                           res_type="soxr_hq")
  if max_seconds is not None and wav.size > max_seconds * sample_rate:
    raise AudioError(path, f"is longer than the {max_seconds:.0f} s limit")
  if wav.size < min_samples:
    raise AudioError(
        path, f"is too short: {wav.size} samples at {sample_rate} Hz, the "
        f"front-end needs at least {min_samples} (one FFT window)")
  if not np.any(wav):
    raise AudioError(path, SILENT)
  return wav.astype(np.float32)


def duration_seconds(path) -> float | None:
  """The file's duration from its header, or None where libsndfile cannot
  read it (the decoder finds out when it loads the file)."""
  import soundfile as sf
  try:
    return float(sf.info(os.fspath(path)).duration)
  except Exception:  # not a libsndfile format, or not audio at all
    return None


def stream(path, sample_rate: int, block_seconds: float = 30.0):
  """Yields a long file as mono float32 blocks at `sample_rate`, reading and
  resampling `block_seconds` at a time (soxr's streaming resampler: the
  same samples as `load_audio`'s one-shot soxr_hq), so that memory does not
  grow with the file. Raises AudioError as `load_audio` does (NaN samples,
  undecodable, all silent)."""
  import soundfile as sf
  import soxr
  path = os.fspath(path)
  try:
    f = sf.SoundFile(path)
  except Exception as e:
    raise _undecodable(path, e) from None
  with f:
    rate = f.samplerate
    rs = (None if rate == sample_rate else
          soxr.ResampleStream(rate, sample_rate, 1, dtype="float32",
                              quality="HQ"))
    block = max(1, int(block_seconds * rate))
    heard = False
    while True:
      x = f.read(block, dtype="float32", always_2d=True)
      last = x.shape[0] < block
      if not np.all(np.isfinite(x)):
        raise AudioError(path, NOT_FINITE)
      x = x.mean(axis=1, dtype=np.float32)
      heard = heard or bool(np.any(x))
      if rs is not None:
        x = rs.resample_chunk(x, last=last)
      if x.size:
        yield x
      if last:
        break
  if not heard:
    raise AudioError(path, SILENT)


def stream_windows(blocks, window: int, hop: int):
  """`frame_windows` over a stream of blocks: yields (start, samples) with
  the same starts and samples, holding at most one window and one block."""
  buf = np.zeros(0, np.float32)
  offset = 0  # the stream position of buf[0]
  next_start = 0
  last_end = 0
  for b in blocks:
    buf = np.concatenate([buf, b])
    while next_start + window <= offset + buf.size:
      a = next_start - offset
      yield next_start, buf[a:a + window].copy()
      last_end = next_start + window
      next_start += hop
    # Keep what a later window may need: from the next start, and the last
    # `window` samples (the end-aligned tail).
    cut = min(next_start, offset + buf.size - window) - offset
    cut = max(0, min(cut, buf.size))
    buf, offset = buf[cut:], offset + cut
  total = offset + buf.size
  if not last_end:  # shorter than one window: the whole clip
    if total:
      yield 0, buf.copy()
  elif last_end < total:  # the end-aligned tail window
    yield total - window, buf[buf.size - window:].copy()


def frame_windows(wav: np.ndarray, window: int,
                  hop: int) -> list[tuple[int, np.ndarray]]:
  """Cuts a long waveform into (start, samples) windows of `window` samples
  every `hop`. A waveform no longer than one window is returned whole; the
  last window is aligned to the end so that no tail is lost."""
  if wav.size <= window:
    return [(0, wav)]
  starts = list(range(0, wav.size - window + 1, hop))
  if starts[-1] + window < wav.size:
    starts.append(wav.size - window)
  return [(s, wav[s:s + window]) for s in starts]
