"""A front-end that keeps what the paper's image throws away.

  python launch.py --config configs/fser_plus.py --workdir runs/plus
  python launch.py --mode generalisation --config configs/fser_plus.py --workdir runs/gen_plus

Changes from configs/fser_fast.py: `features.kind='logmel_time'` (log-mel in
dB with a fixed reference, so loudness survives; one column per 32 ms hop,
so speaking rate survives; each clip tiled to 128 columns and the model
pooling over time, so length is not a shortcut; training crops 128 columns
at random from longer clips, evaluation averages over all of them),
statistics pooling over time (`model.time_pool='mean_std'`: each feature's
mean and spread), SpecAugment masks (2 time and 2 frequency bands of up to
10%) with a small time shift, no zoom (it would change the rate) and no
horizontal flip (it would play the clip backwards: a rising contour becomes
a falling one), and each speaker's own statistics
(`features.normalize='speaker'`: a speaker's loudness and timbre are divided
out, their variation kept).

Optimizer as fser_fast.py (SGD + Nesterov 0.02, warmup 2 epochs, cosine,
60 epochs, clip 20); configs/common.py's `plus` sets the front-end and augmentation.

Measured on the embedded corpus with the generalisation command above (2-core
AVX2 EPYC, 2026-11-25, without gradient clipping), UA % against the linear
baseline on the same splits: random split 100.0 vs 98.7; unseen speakers 99.3 +- 0.4 vs
96.9 +- 3.0 (folds 99.0, 99.5, 100.0, 99.0; none below its baseline);
unseen language 92.7 +- 1.3 vs 91.8 +- 0.9 (folds 91.4 / 94.0 against
92.7 / 90.9: a thin margin). The paper's image scored 96.7 / 95.4 / 79.8.
One run takes about 6 minutes on that CPU (docs/generalisation.md).
The quick-start command above as the code is now (clip 20, 2-core AVX2
EPYC, 2026-11-26, dataset built): fold 0 test UA 0.984 against the linear
baseline's 0.964, 4 min 10 s. The
source run that transfers best to new recordings (docs/learning_curve.md). Defaults to the embedded corpus; accepts
data.dataset / data.protocol / data.fold like fser_fast.py.
"""

from configs import common


def get_config():
  c = common.embedded_speaker_folds()
  common.plus(c)
  common.fast(c, num_epochs=60, eval_every_epochs=4)
  return c
