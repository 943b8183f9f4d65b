"""Waveform augmentation (fser_jax/frontend/wave_augment.py) against references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import signal

from fser_jax.frontend import wave_augment as wa

SR = 16000


def tone(freq, seconds=1.0, amp=0.3, sr=SR):
  t = np.arange(int(seconds * sr)) / sr
  return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def level_db(x):
  return 10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2) + 1e-30)


def test_fft_convolve_matches_numpy_same_and_scipy_lfilter():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, 3000)).astype(np.float32)
  taps = wa.phone_taps(SR)
  got = np.asarray(wa.fft_convolve(jnp.asarray(x), jnp.asarray(taps),
                                   shift=(taps.size - 1) // 2))
  for row in range(2):
    np.testing.assert_allclose(got[row], np.convolve(x[row], taps, "same"),
                               atol=2e-5)
  causal = np.asarray(wa.fft_convolve(jnp.asarray(x), jnp.asarray(taps)))
  np.testing.assert_allclose(causal[0], signal.lfilter(taps, 1.0, x[0]),
                             atol=2e-5)


def test_phone_channel_passes_the_voice_band_and_stops_the_rest():
  clips = np.stack([tone(f) for f in (1000.0, 100.0, 5000.0, 7000.0)])
  n = clips.shape[1]
  out = np.asarray(wa.phone(jnp.asarray(clips), jnp.full((4,), n), SR))
  mid = slice(1000, n - 1000)  # away from the edges' transients
  drop = [level_db(clips[i, mid]) - level_db(out[i, mid]) for i in range(4)]
  assert abs(drop[0]) < 0.5, drop  # 1 kHz: in the band, mu-law noise only
  assert drop[1] > 25 and drop[2] > 40 and drop[3] > 40, drop
  # The band-pass's response equals scipy's for the same taps.
  w, h = signal.freqz(wa.phone_taps(SR), worN=[100, 1000, 3000, 5000], fs=SR)
  assert abs(20 * np.log10(abs(h[1]))) < 0.1
  assert 20 * np.log10(abs(h[3])) < -50


def test_mu_law_round_trip_is_8_bit():
  x = jnp.linspace(-0.99, 0.99, 1001)
  y = np.asarray(wa.mu_law(x))
  err = np.abs(y - np.asarray(x))
  # Companded quantisation: the step grows with amplitude; ~3% at full scale.
  assert err.max() < 0.035 and err[np.abs(np.asarray(x)) < 0.01].max() < 3e-4
  assert np.unique(y).size <= 256


@pytest.mark.parametrize("kind", ["white", "pink", "folder"])
def test_noise_reaches_the_asked_snr_over_valid_samples(kind):
  rng = np.random.default_rng(1)
  lengths = np.array([16000, 9000, 12000])
  x = np.zeros((3, 16000), np.float32)
  for i, l in enumerate(lengths):
    x[i, :l] = tone(220 * (i + 1), 1.0)[:l] * (0.1 + 0.3 * i)
  snr = np.array([20.0, 5.0, 0.0], np.float32)
  key = jax.random.key(3)
  if kind == "folder":
    bank = jnp.asarray(rng.standard_normal(7000).astype(np.float32))
    noise = wa.bank_excerpts(key, bank, 3, 16000)
  else:
    noise = (wa.white_noise if kind == "white" else wa.pink_noise)(
        key, x.shape)
  y = np.asarray(wa.add_noise(jnp.asarray(x), jnp.asarray(lengths), noise,
                              jnp.asarray(snr)))
  for i, l in enumerate(lengths):
    measured = level_db(x[i, :l]) - level_db(y[i, :l] - x[i, :l])
    assert abs(measured - snr[i]) < 0.5, (kind, i, measured)
    assert not np.any(y[i, l:])  # padding stays silent


def test_pink_noise_has_a_1_over_f_spectrum():
  n = wa.pink_noise(jax.random.key(0), (8, 2 ** 14))
  f, p = signal.welch(np.asarray(n), fs=SR, nperseg=1024)
  p = p.mean(0)
  band = (f > 100) & (f < 6000)
  slope = np.polyfit(np.log10(f[band]), 10 * np.log10(p[band]), 1)[0]
  assert -11 < slope < -9, slope  # -10 dB per decade


def schroeder_rt60(h, sr):
  """RT60 from the -5..-35 dB part of the Schroeder decay curve (T30 x 2)."""
  edc = np.cumsum((h ** 2)[::-1])[::-1]
  edc_db = 10 * np.log10(edc / edc[0])
  t = np.arange(h.size) / sr
  m = (edc_db <= -5) & (edc_db >= -35)
  slope = np.polyfit(t[m], edc_db[m], 1)[0]  # dB per second
  return -60.0 / slope


def test_synthetic_impulse_response_has_the_asked_rt60():
  rt60 = jnp.array([0.3, 0.6, 1.0])
  h = np.asarray(wa.decaying_ir(jax.random.key(0), rt60, SR, SR))
  for i, target in enumerate([0.3, 0.6, 1.0]):
    assert abs(schroeder_rt60(h[i], SR) / target - 1) < 0.1
    assert abs(np.sum(h[i] ** 2) - 1) < 1e-4
  x = jnp.asarray(tone(440)[None].repeat(3, 0))
  y = np.asarray(wa.reverb(x, jnp.full((3,), SR), jnp.asarray(h)))
  np.testing.assert_allclose([level_db(r) for r in y], level_db(x[0]),
                             atol=0.01)  # the level is kept


def test_speed_changes_duration_and_pitch():
  x = np.zeros((2, 24000), np.float32)
  x[:, :16000] = tone(500)
  y, lengths = wa.speed(jnp.asarray(x), jnp.array([16000, 16000]),
                        jnp.array([0.8, 1.25]))
  y, lengths = np.asarray(y), np.asarray(lengths)
  assert lengths.tolist() == [20000, 12800]
  for row, factor in enumerate([0.8, 1.25]):
    seg = y[row, :lengths[row]]
    spec = np.abs(np.fft.rfft(seg * np.hanning(seg.size)))
    peak = np.fft.rfftfreq(seg.size, 1 / SR)[spec.argmax()]
    assert abs(peak / (500 * factor) - 1) < 0.01
    assert not np.any(y[row, lengths[row]:])


def test_gain_and_clipping():
  x = jnp.asarray(tone(300, amp=0.5)[None].repeat(2, 0))
  y = np.asarray(wa.gain(x, jnp.array([-20.0, 10.0])))
  assert abs(level_db(x[0]) - level_db(y[0]) - 20) < 1e-3
  assert np.abs(y[1]).max() == 1.0 and np.mean(np.abs(y[1]) == 1.0) > 0.3


def full_config(**over):
  kw = dict(sample_rate=SR, noise_prob=1.0, phone_prob=0.5, gain_prob=0.5,
            speed_prob=0.5, reverb_prob=0.5, reverb_rt60=(0.2, 0.4))
  kw.update(over)
  return wa.WaveAugment(**kw)


def test_zero_probabilities_are_the_identity():
  x = jnp.asarray(np.random.default_rng(0).standard_normal((3, 4000)),
                  jnp.float32)
  lengths = jnp.array([4000, 3000, 100])
  cfg = wa.WaveAugment(SR)
  assert not cfg.active
  y, l2 = wa.augment(jax.random.key(0), x, lengths, cfg)
  assert y is x and l2 is lengths


def test_per_example_keys_give_different_draws_and_same_key_same_draw():
  x = jnp.asarray(np.tile(tone(400, 0.5), (4, 1)))
  lengths = jnp.full((4,), x.shape[1])
  cfg = full_config()
  aug = jax.jit(lambda k: wa.augment(k, x, lengths, cfg))
  y1, _ = aug(jax.random.key(0))
  y2, _ = aug(jax.random.key(0))
  y3, _ = aug(jax.random.key(1))
  np.testing.assert_array_equal(np.asarray(y1), np.asarray(y2))
  assert not np.allclose(y1, y3)
  rows = np.asarray(y1)
  assert all(not np.allclose(rows[0], rows[i]) for i in range(1, 4))


def test_conditions_are_deterministic_and_named_as_the_issue_asks():
  for name in ("clean", "snr_20", "snr_10", "snr_5", "snr_0", "phone",
               "reverb_0.3", "reverb_0.6", "reverb_1.0", "gain_-20",
               "gain_+10", "speed_0.9", "speed_1.1", "phone+snr_10"):
    assert name in wa.CONDITIONS
  x = jnp.asarray(np.tile(tone(400, 0.5), (3, 1)))
  lengths = jnp.full((3,), x.shape[1])
  keys = jax.random.split(jax.random.key(5), 3)
  a, _ = wa.condition(keys, x, lengths, name="phone+snr_10", sample_rate=SR)
  # A clip's draw depends on its own key only, not on the batch around it.
  b, _ = wa.condition(keys[1:], x[1:], lengths[1:], name="phone+snr_10",
                      sample_rate=SR)
  np.testing.assert_allclose(np.asarray(a)[1:], np.asarray(b), atol=1e-6)
  assert not np.allclose(a[0], a[1])  # different keys, different noise
  clean, _ = wa.condition(keys, x, lengths, name="clean", sample_rate=SR)
  np.testing.assert_array_equal(np.asarray(clean), np.asarray(x))
  # The SNR of a named condition is the one its name says.
  noisy, _ = wa.condition(keys, x, lengths, name="snr_5", sample_rate=SR)
  measured = level_db(x[0]) - level_db(np.asarray(noisy)[0] - np.asarray(x)[0])
  assert abs(measured - 5) < 0.5


def test_user_noise_and_impulse_response_folders(tmp_path):
  """augment.wave.noise_dir / ir_dir: read once, noise at unit RMS end to
  end, responses starting 1 ms before their peak at unit energy; a batch
  with only the folder's noise gets exactly that noise's excerpts."""
  import soundfile as sf
  rng = np.random.default_rng(0)
  (tmp_path / "noise").mkdir()
  (tmp_path / "irs").mkdir()
  sf.write(tmp_path / "noise" / "fan.wav",
           (0.2 * rng.standard_normal(8000)).astype(np.float32), SR)
  sf.write(tmp_path / "noise" / "street.flac",
           (0.05 * rng.standard_normal(4000)).astype(np.float32), SR)
  ir = np.zeros(6000, np.float32)
  ir[500] = 0.9  # direct sound after 500 samples of silence
  ir[501:] = 0.1 * rng.standard_normal(5499) * np.exp(-np.arange(5499) / 800)
  sf.write(tmp_path / "irs" / "hall.wav", ir, SR, subtype="FLOAT")
  from fser_jax import config as config_lib
  w = config_lib.base().augment.wave
  w.noise_dir = str(tmp_path / "noise")
  w.ir_dir = str(tmp_path / "irs")
  w.reverb_rt60 = (0.2, 0.5)
  noise, irs = wa.load_banks(w, SR)
  assert noise.shape == (12000,)
  np.testing.assert_allclose(np.sqrt(np.mean(noise[:8000] ** 2)), 1, rtol=1e-3)
  np.testing.assert_allclose(np.sqrt(np.mean(noise[8000:] ** 2)), 1, rtol=1e-3)
  assert irs.shape == (1, int(0.5 * SR))
  assert abs(np.sum(irs[0] ** 2) - 1) < 1e-4
  assert np.argmax(np.abs(irs[0])) == SR // 1000  # 1 ms before the peak
  cfg = wa.WaveAugment(SR, noise_prob=1.0, noise_kinds=("folder",),
                       noise_snr_db=(10.0, 10.0))
  x = jnp.asarray(np.tile(tone(300, 0.25), (2, 1)))
  lengths = jnp.full((2,), x.shape[1])
  y, _ = wa.augment(jax.random.key(0), x, lengths, cfg,
                    {"noise": jnp.asarray(noise)})
  added = np.asarray(y - x)
  for row in added:  # a scaled, contiguous (wrapping) excerpt of the bank
    scale = np.std(row)
    start = int(np.argmin([np.abs(row[:50] / scale
                                  - np.roll(noise, -s)[:50] / np.std(noise)
                                  ).max() for s in range(noise.size)]))
    ref = np.roll(noise, -start)[:row.size]
    np.testing.assert_allclose(row / np.std(row), ref / np.std(ref), atol=1e-3)
  w.noise_dir = str(tmp_path / "x")
  with pytest.raises(Exception, match="noise_dir"):
    wa.load_banks(w, SR)
