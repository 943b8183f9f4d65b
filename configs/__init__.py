"""Experiment configs (`get_config()` files for ml_collections' config flag);
the recipes they share live in configs/common.py."""
