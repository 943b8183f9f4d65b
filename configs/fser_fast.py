"""FSER's data and model family with a recipe that converges in tens of epochs.

  python launch.py --config configs/fser_fast.py --workdir runs/fast
  python launch.py --config configs/fser_fast.py --workdir runs/fast_all \
      --config.data.dataset=fser/all --config.data.data_dir=D

The recipe is configs/common.py's `fast`, as values, on the base's input:
the paper's RGB image standardised per channel with the training split's
mean/std (unstandardised [0, 1] values, as fser_paper.py, left SGD at
chance for tens of epochs) and the paper's augmentation drawn on the fly
instead of 20 fixed copies. Data: the embedded corpus, 4 speaker-independent
folds (fold 0 tests on 3 unseen speakers). A 192-clip fold moves by 2 clips
a point.

Expected: test UA 0.89-0.97 on fold 0 over seeds 0-2 (2-core Intel Xeon with AVX-512 and AMX), the linear baseline 0.94 beside it.
Results: docs/results/quickstart/defaults_xeon-amx_2026-12-06.json
"""

from configs import common


def get_config():
  c = common.embedded_speaker_folds()
  common.fast(c, num_epochs=60, eval_every_epochs=4)
  return c
