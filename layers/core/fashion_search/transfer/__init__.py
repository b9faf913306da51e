"""Moving what the catalog holds: ``reindex`` (catalog -> vector index, no model) and ``migrate``
(one home -> the other: blobs, items, vectors), both without embedding anything again."""

from fashion_search.transfer.migrate import MigrateReport, migrate
from fashion_search.transfer.reindex import ReindexReport, reindex
from fashion_search.transfer.verify import VerifyReport, verify

__all__ = ["MigrateReport", "ReindexReport", "VerifyReport", "migrate", "reindex", "verify"]
