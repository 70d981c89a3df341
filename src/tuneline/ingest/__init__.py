"""Stage 1, ingest: read tables, SQL queries and documents into records that keep file and line."""
