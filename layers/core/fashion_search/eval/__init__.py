"""Retrieval quality on a styles.csv catalog with Marqo's protocol (see docs/eval.md)."""
