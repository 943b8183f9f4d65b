"""The on-device front-end equals librosa on the same waveforms."""

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest

from fser_jax import features

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
  from fser_jax import input_pipeline as ip
  rng = np.random.default_rng(0)
  images = rng.standard_normal((6, 4, 4, 1)).astype(np.float32)
  images[3:] = images[3:] * 5 + 10  # speaker b: another channel, louder
  meta = {"speaker": np.array(["a"] * 3 + ["b"] * 3, object),
          "corpus": np.array(["c"] * 6, object)}
  groups = ip.norm_groups(meta, "speaker")
  norms = ip.group_norms(images, groups)
  out = ip.standardise_clips(images, norms)
  for sl in (slice(0, 3), slice(3, 6)):
    assert abs(out[sl].mean()) < 1e-5 and abs(out[sl].std() - 1) < 1e-3
  # Changing speaker b's clips leaves speaker a's inputs untouched.
  other = images.copy()
  other[3:] *= 3
  out2 = ip.standardise_clips(other, ip.group_norms(other, groups))
  np.testing.assert_array_equal(out[:3], out2[:3])
  # Clips without a speaker fall back to their corpus.
  g = ip.norm_groups({"speaker": np.array(["", "x"], object),
                      "corpus": np.array(["emodb", "emodb"], object)},
                     "speaker")
  assert g.tolist() == ["corpus:emodb", "speaker:x"]


def test_speaker_normalised_run_standardises_test_speakers_by_themselves(
    tiny, tmp_path):
  """In a loaded dataset, each test speaker's images have mean 0 per channel
  over that speaker's clips: their statistics came from them alone."""
  from fser_jax import input_pipeline as ip
  c = tiny(**{"features.normalize": "speaker"})
  data = ip.load(c, progress=False)
  for spk in set(data.meta["speaker"][data.split == "test"].tolist()):
    m = data.meta["speaker"] == spk
    assert set(data.split[m].tolist()) == {"test"}
    np.testing.assert_allclose(data.images[m].mean((0, 1, 2)), 0, atol=1e-4)
  # The raw images come back exactly from the per-clip statistics.
  np.testing.assert_allclose(
      ip.standardise_clips(data.raw_images(), data.clip_norm), data.images,
      atol=1e-4)
