"""Tests for fashion_search/ingest/triggers (the layout mirrors the package)."""
