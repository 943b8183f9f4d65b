"""The paper's CNN in Flax NNX (`cnn`), the convolution, pooling and dropout
kernels it runs on each CPU kind (`kernels`) and the jitted forward functions
that read its parameters (`forward`). Imports `cpu` and lower.
"""
