"""Tests for fashion_search/stores/embedded (the layout mirrors the package)."""
