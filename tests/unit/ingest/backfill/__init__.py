"""Tests for fashion_search/ingest/backfill (the layout mirrors the package)."""
