"""Local ingest triggers (folder watcher, one-shot folder ingest): not in the Lambda layer.

They run on a developer's or operator's machine (`fashion-search ingest`, the demo). On AWS the
trigger is S3 -> SQS -> ``functions/ingest``; both call the same core, ``ingest.pipeline``.
"""
