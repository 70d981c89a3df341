"""Stage 3, index: embed the ingested records and document chunks into a vector store."""
