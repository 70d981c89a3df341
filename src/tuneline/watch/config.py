"""Config section for `tuneline watch`: how often to poll, and S3 prefixes to mirror."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator

from tuneline.config_base import Section


class S3WatchConfig(Section):
    bucket: str = Field(..., description="S3 bucket.")
    prefix: str = Field("", description="Key prefix watched (e.g. 'incoming/').")
    into: Path = Field(
        ..., description="Local folder the objects are mirrored into (keys less the prefix; "
        "relative to the config file); point an ingest source at it, or at a file in it, so "
        "a new object changes the data.",
    )
    endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO, LocalStack); default: AWS."
    )
    region: str | None = Field(None, description="AWS region (default: boto3's).")

    @field_validator("into")
    @classmethod
    def _relative_to_the_config(cls, into: Path, info: ValidationInfo) -> Path:
        """Like a source's path: relative to the config file's folder."""
        base_dir = (info.context or {}).get("base_dir")
        return Path(base_dir) / into if base_dir is not None and not into.is_absolute() else into


class WatchConfig(Section):
    interval_s: float = Field(300.0, gt=0, description="Seconds between polls.")
    s3: list[S3WatchConfig] = Field(
        default_factory=list, description="S3 prefixes mirrored into local folders each poll.",
    )
    on_drift: bool = Field(
        False, description="Each poll also tests the newest serve.traffic.drift_window "
        "requests the server recorded against the run's drift baseline (as `tuneline monitor "
        "--traffic`); when an alert starts, the pipeline runs even if no source changed "
        "(stages whose inputs did not change are skipped, so only new data makes a new "
        "version) and the report is written to runs/<run>/monitor/.",
    )
