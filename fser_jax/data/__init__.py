"""Data into arrays: reading a TFDS dataset or the user's files
(`dataset_io`), the in-memory pipeline (`input_pipeline`), streaming from
ArrayRecord files (`stream`), splits by protocol (`splits`) and label names
(`labels`). Imports `datasets`, `evaluation`, `frontend` and lower.
"""
