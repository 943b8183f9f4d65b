"""Experiments that use trained runs: predict, evaluate, generalisation,
learning_curve. Each writes JSON + Markdown (+ PNG). They import the stages
(fser_jax/*.py) and run.py; no stage imports them."""
