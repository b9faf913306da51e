"""`fashion-search aws backfill` (queue what a bucket holds): operator tooling, not in the layer.

It runs on the operator's machine and sends S3-shaped messages onto the stack's ingest queue;
the ingest Lambda then indexes them like S3's own notifications. ``cost`` models its time and
price (``benchmarks/backfill.py``).
"""
