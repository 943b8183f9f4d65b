"""Command-line tools above every layer: the CPU tuner (`python -m
fser_jax.tools.tune`). May import anything in fser_jax.
"""
