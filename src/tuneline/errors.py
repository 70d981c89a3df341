"""Exceptions raised by tuneline's library code; the CLI turns them into messages and exit codes."""

from __future__ import annotations


class TunelineError(Exception):
    """Base class of every error tuneline raises on purpose."""

    exit_code = 1


class ConfigError(TunelineError):
    """The configuration is invalid; carries every problem found, not just the first."""

    exit_code = 2

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = problems
        self.source = source
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s){where}:\n{lines}")


class DataError(TunelineError):
    """Input data is malformed or missing; the message names the file, line and field."""

    exit_code = 3


class MissingDependencyError(TunelineError):
    """An optional dependency is not installed; the message says which extra to install."""

    exit_code = 4


class ModelError(TunelineError):
    """A base model or adapter could not be found or loaded."""

    exit_code = 5


class RegistryError(TunelineError):
    """The model registry has no such model or version, or is inconsistent."""

    exit_code = 6


class QualityGateFailed(TunelineError):
    """A trained model did not pass the configured quality gate."""

    exit_code = 7


class LlmEndpointError(TunelineError):
    """An LLM endpoint refused every request (bad URL, model or key) or cannot be reached."""

    exit_code = 8


class ManagedJobError(TunelineError):
    """A provider's fine-tuning job (OpenAI, Bedrock) failed, was refused or timed out."""

    exit_code = 9


class DriftAlert(TunelineError):
    """Live traffic moved away from what the model was trained on (`tuneline monitor`)."""

    exit_code = 10
