"""The on-device front-end equals librosa on the same waveforms."""

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest

from fser_jax.frontend import spectrogram as features

SR = 16000


def _clip(seconds, seed=0):
  rng = np.random.default_rng(seed)
  t = np.arange(int(SR * seconds)) / SR
  return (0.5 * np.sin(2 * np.pi * 220 * t) * np.linspace(0.2, 1, t.size)
          + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.mark.parametrize("seconds", [0.5, 1.37, 3.0])
def test_power_mel_equals_librosa(seconds):
  y = _clip(seconds)
  ref = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=512, hop_length=512,
                                       win_length=512, window="hann")
  ours = np.asarray(features.power_mel(jnp.asarray(y)[None], sample_rate=SR))[0]
  assert ours.shape == ref.shape
  # float32 FFT vs librosa's: relative to the spectrogram's peak.
  np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5 * ref.max())


def test_power_to_db_equals_librosa():
  y = _clip(1.0)
  ref = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=512, hop_length=512)
  want = librosa.power_to_db(ref, ref=np.max, top_db=80.0)
  got = np.asarray(features.power_to_db(jnp.asarray(ref)[None]))[0]
  np.testing.assert_allclose(got, want, atol=1e-3)
  assert got.max() == 0.0 and got.min() >= -80.0


def test_padding_does_not_change_the_image():
  y = _clip(1.2)
  padded = np.zeros(SR * 3, np.float32)
  padded[:y.size] = y
  kw = dict(sample_rate=SR)
  a = features.images_from_waveforms(jnp.asarray(y)[None], jnp.array([y.size]), **kw)
  b = features.images_from_waveforms(jnp.asarray(padded)[None],
                                     jnp.array([y.size]), **kw)
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


def test_rgb_image_is_the_coolwarm_picture():
  y = _clip(1.0)
  img = np.asarray(features.images_from_waveforms(
      jnp.asarray(y)[None], jnp.array([y.size]), sample_rate=SR))[0]
  assert img.shape == (64, 64, 3)
  assert 0.0 <= img.min() and img.max() <= 1.0
  # The 220 Hz tone is the loudest part: dark red (coolwarm's top) near the
  # bottom rows (low frequencies), blue-ish at the top.
  lut = features.colormap_lut("coolwarm")
  bottom = img[-20:].reshape(-1, 3)
  reddest = bottom[np.argmax(bottom[:, 0] - bottom[:, 2])]
  assert reddest[0] > 0.6 and reddest[2] < 0.4
  top = img[:5].mean(axis=(0, 1))
  assert top[2] > top[0]  # more blue than red at high frequencies
  np.testing.assert_allclose(lut[-1], [0.706, 0.016, 0.150], atol=0.01)


def test_resize_weights_match_jax_image_resize():
  x = np.random.default_rng(0).random((128, 3)).astype(np.float32)
  w = features.resize_weights(jnp.asarray(128), 128, 64)
  want = jax.image.resize(jnp.asarray(x), (64, 3), "linear")
  np.testing.assert_allclose(np.asarray(w @ x), np.asarray(want), atol=1e-5)


def test_logmel_keeps_loudness():
  y = _clip(1.0)
  loud = features.compute_images([y, 0.1 * y], _cfg("logmel"), SR)
  rgb = features.compute_images([y, 0.1 * y], _cfg("rgb"), SR)
  assert loud.shape == (2, 64, 64, 1)
  # 20 dB quieter: 20 dB lower log-mel, the same paper image (ref=max).
  np.testing.assert_allclose(loud[0] - loud[1], 20.0, atol=0.05)
  # (up to one step of the 256-entry colour table)
  np.testing.assert_allclose(rgb[0], rgb[1], atol=0.02)


def _cfg(kind):
  from fser_jax import config
  c = config.base().features
  c.kind = kind
  return c


def test_speaker_normalisation_uses_each_speakers_own_audio_only():
  """features.normalize='speaker': a clip is standardised with its own
  speaker's statistics, whatever the labels and the other speakers' clips."""
  from fser_jax.frontend import normalisation as norm_lib
  rng = np.random.default_rng(0)
  images = rng.standard_normal((6, 4, 4, 1)).astype(np.float32)
  images[3:] = images[3:] * 5 + 10  # speaker b: another channel, louder
  meta = {"speaker": np.array(["a"] * 3 + ["b"] * 3, object),
          "corpus": np.array(["c"] * 6, object)}
  groups = norm_lib.norm_groups(meta, "speaker")
  norms = norm_lib.group_norms(images, groups)
  out = norm_lib.standardise_clips(images, norms)
  for sl in (slice(0, 3), slice(3, 6)):
    assert abs(out[sl].mean()) < 1e-5 and abs(out[sl].std() - 1) < 1e-3
  # Changing speaker b's clips leaves speaker a's inputs untouched.
  other = images.copy()
  other[3:] *= 3
  out2 = norm_lib.standardise_clips(other, norm_lib.group_norms(other, groups))
  np.testing.assert_array_equal(out[:3], out2[:3])
  # Clips without a speaker fall back to their corpus.
  g = norm_lib.norm_groups({"speaker": np.array(["", "x"], object),
                      "corpus": np.array(["emodb", "emodb"], object)},
                     "speaker")
  assert g.tolist() == ["corpus:emodb", "speaker:x"]


def test_speaker_normalised_run_standardises_test_speakers_by_themselves(
    tiny, tmp_path):
  """In a loaded dataset, each test speaker's images have mean 0 per channel
  over that speaker's clips: their statistics came from them alone."""
  from fser_jax.data import input_pipeline as ip
  from fser_jax.frontend import normalisation as norm_lib
  c = tiny(**{"features.normalize": "speaker"})
  data = ip.load(c, progress=False)
  for spk in set(data.meta["speaker"][data.split == "test"].tolist()):
    m = data.meta["speaker"] == spk
    assert set(data.split[m].tolist()) == {"test"}
    np.testing.assert_allclose(data.images[m].mean((0, 1, 2)), 0, atol=1e-4)
  # The raw images come back exactly from the per-clip statistics.
  np.testing.assert_allclose(
      norm_lib.standardise_clips(data.raw_images(), data.clip_norm), data.images,
      atol=1e-4)


# --- logmel_time: the front-end that keeps rate, loudness and length apart ---
def _bursts(seconds: float, rate_hz: float) -> np.ndarray:
  """A 220 Hz voice switched on and off `rate_hz` times a second: the same
  'speech' at another speaking rate keeps its pitch and changes rate."""
  t = np.arange(int(SR * seconds)) / SR
  gate = (np.sin(2 * np.pi * rate_hz * t) > 0).astype(np.float32)
  return (0.3 * np.sin(2 * np.pi * 220 * t) * gate).astype(np.float32)


def _on_columns(img: np.ndarray, n: int) -> int:
  """Bursts seen in the first `n` columns (rising edges of column energy)."""
  e = img[..., 0].mean(0)[:n]
  on = e > (e.max() + e.min()) / 2
  return int(np.sum(on[1:] & ~on[:-1]) + on[0])


def test_logmel_time_keeps_speaking_rate_where_the_paper_image_loses_it():
  fast, slow = _bursts(1.0, 4.0), _bursts(2.0, 2.0)  # slow: 2x slower
  # Before tiling, the slowed clip spans twice the frames (duration kept).
  assert features.num_frames(slow.size, 512) - 1 == \
      2 * (features.num_frames(fast.size, 512) - 1)
  t = features.compute_images([fast, slow], _cfg("logmel_time"), SR)
  assert t.shape == (2, 64, 128, 1)
  # 128 columns = 4.1 s: 4 bursts/s -> ~16, 2 bursts/s -> ~8.
  n_fast, n_slow = _on_columns(t[0], 128), _on_columns(t[1], 128)
  assert abs(n_fast - 2 * n_slow) <= 1 and n_fast >= 15, (n_fast, n_slow)
  # The paper's image stretches each clip to 64 columns: ~4 bursts in both
  # (within one, at the edges): the rate is gone.
  r = features.compute_images([fast, slow], _cfg("rgb"), SR)
  counts = _on_columns(r[0], 64), _on_columns(r[1], 64)
  assert abs(counts[0] - counts[1]) <= 1 and 3 <= min(counts), counts


def test_logmel_time_keeps_loudness_and_tiles_short_clips():
  y = _bursts(1.0, 4.0)
  tone = _clip(1.0)
  quiet = tone * 10 ** (-12 / 20)  # 12 dB quieter
  t = features.compute_images([tone, quiet], _cfg("logmel_time"), SR)
  np.testing.assert_allclose(t[0] - t[1], 12.0, atol=0.05)  # fixed reference
  t = features.compute_images([y], _cfg("logmel_time"), SR)
  # A 1 s clip fills its 128 columns by repeating: its image is that of the
  # clip tiled by hand to the same length.
  tiled = np.tile(y, 5)[:127 * 512]
  by_hand = features.compute_images([tiled], _cfg("logmel_time"), SR)
  np.testing.assert_allclose(t[0], by_hand[0], atol=1e-3)


def test_logmel_time_stores_long_clips_whole():
  long = _bursts(6.0, 3.0)  # 6 s: 188 frames -> 192 columns (x16)
  t = features.compute_images([long, _bursts(1.0, 3.0)], _cfg("logmel_time"),
                              SR)
  assert t.shape == (2, 64, 192, 1)
  assert features.time_frames(_cfg("rgb"), long.size) is None


@pytest.mark.parametrize("pool", ["mean", "mean_std"])
def test_time_pooled_model_is_indifferent_to_how_often_a_clip_repeats(pool):
  """Pooling over time: the same tiled clip stored 128 or 256 columns wide
  gives (almost) the same logits, so length is not a shortcut."""
  from flax import nnx
  from fser_jax.model import cnn as model_lib
  m = model_lib.FSER(8, in_channels=1, filters=(8, 8, 16, 16), dense=(32,),
                     time_pool=pool, rngs=nnx.Rngs(0))
  assert m.dense[0].in_features == (64 // 16) * 16 * (2 if pool == "mean_std"
                                                       else 1)
  y = _bursts(1.0, 4.0)
  cfg = _cfg("logmel_time")
  a = features.compute_images([y], cfg, SR)
  cfg.frames = 256
  b = features.compute_images([y], cfg, SR)
  la, lb = m(jnp.asarray(a / 50)), m(jnp.asarray(b / 50))
  # (the spread over 8 vs 16 pooled columns, tile seams included, moves a
  # little more than the mean)
  tol = 0.05 if pool == "mean" else 0.1
  np.testing.assert_allclose(la, lb, atol=tol * float(jnp.abs(la).max()))


def test_compute_images_holds_nothing_after_it_returns():
  """The padded batch (64 rows x 2.5 s here: 10 MB) is freed when
  compute_images returns, not whenever the garbage collector next runs
  (jaxlib releases a transferred host array from a gc callback), so what
  a streamed load holds does not depend on the collector's timing."""
  import gc
  import tracemalloc
  from fser_jax import config as config_lib
  cfg = config_lib.base().features
  clips = [_clip(2.5, seed) for seed in range(16)]
  features.compute_images(clips, cfg, SR)  # compiled first
  gc.disable()  # the collector must not be what frees it
  try:
    tracemalloc.start()
    images = features.compute_images(clips, cfg, SR)
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
  finally:
    gc.enable()
  padded_batch = 64 * clips[0].size * 4
  assert held - images.nbytes < padded_batch / 10, (held, images.nbytes)
