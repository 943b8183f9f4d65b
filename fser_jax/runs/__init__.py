"""A run as a user meets it: a trained run read back, the one way from audio
to probabilities (`trained`), training and reporting the CNN (`cnn`) or a
linear head on a pretrained encoder (`head`), scoring labelled data
(`scoring`). Imports `train` and lower.
"""
