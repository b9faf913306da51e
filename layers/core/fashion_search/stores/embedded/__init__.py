"""Embedded adapters (SQLite catalog, folder blobs, file vector index): production, one machine.

The local home (`fashion-search serve` / `ingest`) runs on them; they ship in the core Lambda
layer too, used there only when the settings pick the embedded stores.
"""
