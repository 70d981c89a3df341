"""Stage 1, ingest: read tables, SQL and documents into records that keep file and line."""
