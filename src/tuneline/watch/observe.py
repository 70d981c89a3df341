"""What `tuneline watch` looks at: each ingest source's content fingerprint (a file's bytes,
a folder's documents, a SQL query's rows), after mirroring the watched S3 prefixes."""

from __future__ import annotations

from typing import Any

from tuneline._optional import require
from tuneline.artifacts import write_bytes_atomic
from tuneline.config import PipelineConfig
from tuneline.errors import DataError
from tuneline.watch.config import S3WatchConfig


def source_fingerprints(cfg: PipelineConfig) -> dict[str, str]:
    """{"source:<name>": content hash} for every ingest source."""
    from tuneline.ingest.sources import source_fingerprint

    return {f"source:{s.name}": source_fingerprint(s) for s in cfg.ingest.sources}


def mirror_s3(spec: S3WatchConfig, etags: dict[str, str]) -> list[str]:
    """Download the objects under `spec.prefix` that are new or changed since `etags` (key →
    ETag of what was fetched, updated in place) into `spec.into`; returns their keys. Each file
    is written atomically; a key that would land outside `spec.into` is refused."""
    s3 = _client(spec)
    root = spec.into.resolve()
    fetched = []
    for obj in _objects(s3, spec):
        relative = obj["Key"][len(spec.prefix):].lstrip("/")
        if not relative or relative.endswith("/") or etags.get(obj["Key"]) == obj["ETag"]:
            continue
        target = (root / relative).resolve()
        if root not in target.parents:
            raise DataError(f"s3://{spec.bucket}/{obj['Key']}: the key leaves {spec.into}")
        body = s3.get_object(Bucket=spec.bucket, Key=obj["Key"])["Body"].read()
        write_bytes_atomic(target, body)
        etags[obj["Key"]] = obj["ETag"]
        fetched.append(obj["Key"])
    return fetched


def _client(spec: S3WatchConfig) -> Any:
    boto3 = require("boto3")
    return boto3.client("s3", endpoint_url=spec.endpoint_url, region_name=spec.region)


def _objects(s3: Any, spec: S3WatchConfig) -> list[dict[str, Any]]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=spec.bucket, Prefix=spec.prefix)
    return [obj for page in pages for obj in page.get("Contents", [])]
