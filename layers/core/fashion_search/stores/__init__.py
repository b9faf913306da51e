"""The three ports (blobs, catalog, vectors), one module each, and one file per adapter."""
