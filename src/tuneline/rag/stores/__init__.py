"""Vector stores behind one protocol (LanceDB, Milvus), and the factory that opens one."""

from __future__ import annotations

from tuneline.errors import ConfigError
from tuneline.rag.stores.vector_store import StoreKind, VectorStore


def open_store(kind: StoreKind, uri: str, collection: str, dim: int) -> VectorStore:
    """Open (creating if needed) a collection of `dim`-dimensional vectors, cosine metric.

    Args:
        kind: ``"lancedb"`` (uri: a local folder) or ``"milvus"`` (uri: a Milvus Lite file
            ending in ``.db``, or a server URL such as ``http://localhost:19530``).
        uri: Where the store lives.
        collection: Table / collection name.
        dim: Embedding dimension; must match an existing collection's.

    Raises:
        ConfigError: Unknown kind, bad dim, or an existing collection with another dim.
        MissingDependencyError: The store's library is not installed (extra ``rag``).
    """
    if dim <= 0:
        raise ConfigError([f"vector dim must be positive, got {dim} (collection {collection!r})"])
    if kind == "lancedb":
        from tuneline.rag.stores.lancedb_store import LanceDBStore

        return LanceDBStore(uri, collection, dim)
    if kind == "milvus":
        from tuneline.rag.stores.milvus_store import MilvusStore

        return MilvusStore(uri, collection, dim)
    raise ConfigError([f"unknown vector store kind {kind!r}; use 'lancedb' or 'milvus'"])
