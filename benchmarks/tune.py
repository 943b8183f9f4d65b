"""The tuner's real timings on this machine (fser_jax/tools/tune.py): every
candidate's train step, the choice, and the cache it writes.

  python benchmarks/tune.py --json benchmark_results/tune.json
"""

import sys

import common  # noqa: F401  (sys.path, TF log level)
from fser_jax.tools import tune

if __name__ == "__main__":
  print(common.device_name())
  tune.main(sys.argv[1:])
