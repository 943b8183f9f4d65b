"""Training: the optimizer (`optimizer`), the device mesh (`mesh`), what a
step gathers its batch from (`inputs`), the pure step and the loop (`loop`),
checkpoints (`checkpoints`), the run directory (`rundir`), the run log
(`runlog`), starting from a trained run (`transfer`) and several processes
(`distributed`). Imports `data`, `model` and lower.
"""
