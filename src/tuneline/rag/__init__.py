"""Retrieval-augmented generation: passages, embeddings and vector stores (LanceDB, Milvus)."""
