"""index.retrieval.min_similarity: passages less similar to the question than the floor are
not shown, a question left with none is declined without the model, and changing the floor
rebuilds nothing that training reads."""

from __future__ import annotations

import pytest

pytest.importorskip("lancedb")
pytest.importorskip("torch")

from conftest import tiny_pipeline_config  # noqa: E402
from tuneline.config import PipelineConfig  # noqa: E402
from tuneline.pipeline import run_pipeline  # noqa: E402
from tuneline.rag.retrieve import Retriever, no_passage_reply  # noqa: E402

ON_TOPIC = "What is the capital of France?"
OFF_TOPIC = "How much capital does a bakery need to start?"
FLOOR = 0.6


def _config(root, model_dir, **retrieval) -> PipelineConfig:
    data = tiny_pipeline_config(root, model_dir)
    data["index"] = {"enabled": True,
                     "templates": {"capitals": "The capital of {country} is {capital}."},
                     "retrieval": {"top_k": 3, **retrieval}}
    data["curate"]["rag"] = {"fraction": 0.5}
    return PipelineConfig.model_validate(data)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("floor")
    cfg = _config(root, tiny_model_dir)
    return root, cfg, run_pipeline(cfg, until="curate")


def _with_floor(cfg: PipelineConfig, floor: float | None, mode: str | None = None
                ) -> PipelineConfig:
    retrieval = {"min_similarity": floor, **({"mode": mode} if mode else {})}
    return cfg.model_copy(update={"index": cfg.index.model_copy(update={
        "retrieval": cfg.index.retrieval.model_copy(update=retrieval)})})


@pytest.mark.parametrize("mode", ["hybrid", "text", "vector"])
def test_hits_under_the_floor_are_not_shown(indexed, mode):
    _, cfg, _ = indexed
    plain = Retriever.for_run(_with_floor(cfg, None, mode))
    floored = Retriever.for_run(_with_floor(cfg, FLOOR, mode))
    questions = [ON_TOPIC, OFF_TOPIC]
    vectors = plain.embedder.embed(questions)
    unfloored = plain.search_embedded(questions, vectors)
    kept = floored.search_embedded(questions, vectors)
    assert [len(hits) for hits in unfloored] == [3, 3]
    # The floor keeps the passage the question asks about, by its cosine to the question,
    # whatever the mode scores hits by; the bakery question keeps none.
    assert [h.passage.text for h in kept[0]] == ["The capital of France is Paris."]
    assert kept[1] == []
    for vector, hits, shown in zip(vectors, unfloored, kept, strict=True):
        similar = [h.passage.id for h in hits
                   if float(vector @ plain.embedder.embed([h.passage.text])[0]) >= FLOOR]
        assert [h.passage.id for h in shown] == similar
    # Curate's copies ask for what retrieval finds, under the floor too.
    assert len(floored.search_embedded([OFF_TOPIC], vectors[1:], floor=False)[0]) == 3


def test_a_floor_declines_without_the_model_what_it_leaves_without_passages(indexed):
    _, cfg, _ = indexed
    assert no_passage_reply(cfg) is None
    assert no_passage_reply(_with_floor(cfg, 0.5)) == cfg.synthesize.unanswerable.answer
    refusing = _with_floor(cfg, 0.5)
    refusing.index.retrieval.decline_without_passages = False
    assert no_passage_reply(refusing) is None


def test_changing_the_floor_rebuilds_neither_the_index_nor_the_training_data(indexed):
    _, cfg, first = indexed
    again = run_pipeline(_with_floor(cfg, 0.5), until="curate")
    for stage in ("index", "curate"):
        assert again.artifacts[stage].skipped
        assert again.artifacts[stage].output_hash == first.artifacts[stage].output_hash
    # Curate made to run again under a floor that shows nearly nothing writes the same data:
    # its training copies show what retrieval finds.
    forced = run_pipeline(_with_floor(cfg, 0.99), until="curate", force=frozenset({"curate"}))
    assert not forced.artifacts["curate"].skipped
    assert forced.artifacts["curate"].output_hash == first.artifacts["curate"].output_hash
    # Evaluate, which searches with it, keys the floor.
    assert (_with_floor(cfg, 0.5).section_hash("index")
            != _with_floor(cfg, None).section_hash("index"))
