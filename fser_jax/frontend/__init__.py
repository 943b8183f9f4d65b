"""From a recording to the model's input: reading audio (`audio`), the
paper's mel-spectrogram image (`spectrogram`), the channel simulated on the
waveform (`wave_augment`), image augmentation (`augment`), standardisation
(`normalisation`) and the per-clip statistics of the linear baseline
(`statistics`). Imports only `errors` and `config` of fser_jax.
"""
