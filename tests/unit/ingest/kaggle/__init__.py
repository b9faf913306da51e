"""Tests for fashion_search/ingest/kaggle (the layout mirrors the package)."""
