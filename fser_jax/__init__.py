"""fser_jax: FSER speech emotion recognition in JAX/Flax.

Layered packages, lowest first; a module imports its own package or lower
ones, never higher (tests/test_layout.py):

  errors, config   the error classes; the config base, choices, validation
  cpu/             XLA:CPU flags, oneDNN's FFI, the compilation cache
  frontend/        audio, spectrogram, waveform channel, image augmentation,
                   normalisation, per-clip statistics
  model/           the paper's CNN, its kernels, its forward functions
  datasets/        TFDS builders, the corpus registry, synthetic data
  encoders/        pretrained speech encoders and their states' store
  evaluation/      metrics, calibration, familiarity, plots, the linear baseline
  data/            TFDS reading, the input pipeline, streaming, splits, labels
  train/           optimizer, mesh, inputs, the step, the loop, checkpoints,
                   run directories, transfer, several processes
  runs/            a trained run (audio -> probabilities), the CNN run, the
                   encoder-head run, scoring, the report writer
  experiments/     one module (or package) per mode
  tools/           command-line tools: the CPU tuner, the docs' tables

Importing fser_jax changes nothing in the process: `fser_jax.cpu.configure()`
applies the per-CPU defaults (launch.py, the benchmarks and the tuner call it;
call it first in your own script).
"""

__version__ = "0.2.0"
