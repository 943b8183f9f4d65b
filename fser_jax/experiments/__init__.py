"""One module (or package) per mode of launch.py: predict, evaluate,
generalisation, robustness, embed, learning_curve/. Each writes JSON and
Markdown (and PNG where a picture helps). Experiments import every layer
below them and never each other.
"""
