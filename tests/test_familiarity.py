"""fser_jax.evaluation.familiarity: Mahalanobis distance to the nearest class mean."""

import numpy as np

from fser_jax.evaluation import familiarity


def _blobs(rng, n, d=6, shift=0.0):
  labels = np.repeat(np.arange(3), n)
  centres = np.eye(3, d) * 8.0
  x = centres[labels] + rng.standard_normal((3 * n, d)) * np.linspace(0.5, 2, d)
  return x + shift, labels


def test_distance_is_the_mahalanobis_distance_to_the_nearest_class_mean():
  rng = np.random.default_rng(0)
  x, y = _blobs(rng, 400)
  fam = familiarity.fit(x, y, x[:10])
  # Means are the class means; the precision inverts the pooled covariance.
  np.testing.assert_allclose(fam["means"][1], x[y == 1].mean(0))
  pooled = np.cov((x - fam["means"][y]).T, bias=True)
  np.testing.assert_allclose(np.linalg.inv(fam["precision"]), pooled,
                             rtol=0.05, atol=0.05)  # Ledoit-Wolf shrinks a bit
  q = np.array([[8.0, 0, 0, 0, 0, 3.0]])  # class 0's mean + 3 in the last dim
  diff = q - fam["means"][0]
  want = np.sqrt(diff @ fam["precision"] @ diff.T)[0, 0]
  np.testing.assert_allclose(familiarity.distance(fam, q), [want])
  assert 1.2 < want < 1.8  # ~3 / 2 (that dimension's std is 2)


def test_threshold_flags_shifted_inputs_and_few_in_distribution_ones():
  rng = np.random.default_rng(1)
  x, y = _blobs(rng, 300)
  val, _ = _blobs(rng, 300)
  fam = familiarity.fit(x, y, val)
  assert np.mean(familiarity.distance(fam, val) > fam["threshold"]) <= 0.011
  test, _ = _blobs(rng, 300)
  s = familiarity.summary(fam, familiarity.distance(fam, test))
  assert s["test_unfamiliar_fraction"] < 0.05
  far, _ = _blobs(rng, 100, shift=np.array([0, 0, 0, 6.0, 6.0, 0]))
  s = familiarity.summary(fam, familiarity.distance(fam, far))
  assert s["test_unfamiliar_fraction"] > 0.95


def test_save_and_load_round_trip(tmp_path):
  rng = np.random.default_rng(2)
  x, y = _blobs(rng, 50)
  fam = familiarity.fit(x, y, np.zeros((0, 6)))  # no validation: train's
  path = str(tmp_path / familiarity.FILENAME)
  familiarity.save(path, fam)
  back = familiarity.load(path)
  assert back["threshold"] == fam["threshold"]
  np.testing.assert_array_equal(back["precision"], fam["precision"])
  np.testing.assert_array_equal(familiarity.distance(back, x),
                                familiarity.distance(fam, x))


def test_summary_splits_accuracy_by_familiarity():
  fam = {"threshold": 2.0, "quantile": 0.99}
  d = np.array([0.5, 1.0, 3.0, 4.0, 5.0])
  correct = np.array([True, True, False, True, False])
  s = familiarity.summary(fam, d, correct)
  assert (s["n_familiar"], s["n_unfamiliar"]) == (2, 3)
  assert s["test_unfamiliar_fraction"] == 0.6
  assert s["accuracy_familiar"] == 1.0
  assert s["accuracy_unfamiliar"] == 1 / 3
  assert s["test_median_distance"] == 3.0
  assert familiarity.summary(fam, d[:2], correct[:2])["accuracy_unfamiliar"] is None
