"""A front-end that keeps what the paper's image throws away.

  python launch.py --config configs/fser_plus.py --workdir runs/plus
  python launch.py --mode generalisation --config configs/fser_plus.py --workdir runs/gen_plus

The recipe is configs/common.py's `plus` and `fast`, as values; why each
part: log-mel in dB with a fixed reference, so loudness survives; one column
per 32 ms hop, so speaking rate survives; each clip tiled to 128 columns and
the model pooling over time, so length is not a shortcut (training crops
128 columns at random from longer clips, evaluation averages over all of
them); statistics pooling over time (each feature's mean and spread);
SpecAugment masks with a small time shift, no zoom (it would change the
rate) and no horizontal flip (it would play the clip backwards: a rising
contour becomes a falling one); each speaker's own statistics (a speaker's
loudness and timbre are divided out, their variation kept). The source run
that transfers best to new recordings (docs/learning_curve.md). Defaults to
the embedded corpus; accepts data.dataset / data.protocol / data.fold like
fser_fast.py.

Expected: not measured in a committed result (docs/generalisation.md reports runs whose output was not kept).
"""

from configs import common


def get_config():
  c = common.embedded_speaker_folds()
  common.plus(c)
  common.fast(c, num_epochs=60, eval_every_epochs=4)
  return c
