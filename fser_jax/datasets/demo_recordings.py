"""Writes the embedded stand-in for your own recordings (README, "Your
recordings"): 600 phone-quality clips of 6 new speakers in a third synthetic
language, 5 emotions under their own names, with a manifest.

  python -m fser_jax.datasets.demo_recordings OUT_DIR [--utterances 20]
"""

import argparse

from fser_jax.datasets.synthetic import write_user_recordings


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("out_dir")
  p.add_argument("--utterances", type=int, default=20,
                 help="clips per speaker and emotion (20: 600 clips)")
  a = p.parse_args()
  print(write_user_recordings(a.out_dir, utterances=a.utterances))


if __name__ == "__main__":
  main()
