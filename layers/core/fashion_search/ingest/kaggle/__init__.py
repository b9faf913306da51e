"""Kaggle fashion-product-images loader (styles.csv -> catalog): tooling, not in the layer.

Used by `fashion-search ingest --styles`, the demo, eval and train.
"""
