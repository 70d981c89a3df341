"""index.retrieval.min_similarity: auto: a floor derived from the run's training questions
(real MiniLM embedder and LanceDB; the tiny random model trains where evaluate runs)."""

from __future__ import annotations

import json

import pytest

from tuneline.index.config import RetrievalConfig
from tuneline.rag.floor import MIN_QUESTIONS, floor_from_similarities, training_questions

ENTRIES = [
    ("How do I water a cactus?", "Soak the soil of the cactus once every three weeks in "
     "summer and let it dry out completely before the next watering."),
    ("How do I patch a bicycle inner tube?", "Roughen the rubber around the puncture, spread "
     "vulcanising solution, wait a minute and press the patch on firmly."),
    ("How long should I boil an egg?", "Boil an egg for six minutes for a soft yolk and ten "
     "minutes for a firm one, then cool it in cold water."),
    ("How do I tune a guitar by ear?", "Tune the low E string to a reference note, then match "
     "each string to the fifth fret of the string below it."),
    ("How do I remove a red wine stain?", "Blot the wine, cover the stain with salt or baking "
     "soda, then rinse it with cold water before washing."),
    ("How often should I change my car oil?", "Change the engine oil every ten thousand "
     "kilometres or once a year, whichever comes first."),
    ("How do I sharpen a kitchen knife?", "Draw the blade across a whetstone at a fifteen "
     "degree angle, alternating sides, then hone it on a steel."),
    ("How do I repot an orchid?", "Repot the orchid after flowering into fresh bark, trimming "
     "dead roots and keeping the crown above the bark."),
    ("How do I bleed a radiator?", "Turn the heating off, open the radiator valve with a key "
     "until water appears, then close it and check the boiler pressure."),
    ("How do I fold a fitted sheet?", "Tuck the corners of the fitted sheet into each other, "
     "lay it flat and fold it into a rectangle."),
    ("How do I start a sourdough starter?", "Mix equal weights of flour and water in a jar "
     "and feed it daily for a week until it doubles after feeding."),
    ("How do I unclog a sink drain?", "Pour boiling water down the drain, then use a plunger "
     "or a drain snake to clear the blockage."),
    ("How do I wax a snowboard?", "Drip hot wax along the base of the snowboard, iron it in, "
     "let it cool and scrape off the excess."),
    ("How do I train a puppy to sit?", "Hold a treat above the puppy's nose, move it back "
     "until the puppy sits, then reward it at once."),
    ("How do I clean a cast iron pan?", "Scrub the cast iron pan with hot water and coarse "
     "salt, dry it on the stove and rub in a thin layer of oil."),
    ("How do I hang a picture straight?", "Mark the height with a pencil, use a spirit level "
     "to place both hooks and hang the picture on them."),
    ("How do I brew green tea?", "Steep green tea leaves in water at about eighty degrees "
     "for two minutes; boiling water makes it bitter."),
    ("How do I prune a rose bush?", "Prune the rose bush in late winter, cutting above an "
     "outward-facing bud and removing dead or crossing canes."),
    ("How do I replace a light switch?", "Switch off the circuit breaker, unscrew the old "
     "switch, connect the wires to the new one and screw it back."),
    ("How do I store fresh basil?", "Keep fresh basil stems in a glass of water on the "
     "counter, loosely covered, away from the fridge."),
    ("How do I knit a purl stitch?", "Hold the yarn in front, insert the needle from right "
     "to left through the front of the stitch and wrap the yarn."),
    ("How do I descale a kettle?", "Fill the kettle with equal parts water and vinegar, "
     "boil it, leave it for an hour and rinse it well."),
    ("How do I wash a wool sweater?", "Hand wash the wool sweater in cool water with wool "
     "detergent, press out the water and dry it flat."),
    ("How do I check tyre pressure?", "Unscrew the valve cap, press a pressure gauge onto "
     "the valve and compare the reading with the figure in the door frame."),
]
DECLINE = "I don't have information about that in my data."


def test_the_floor_is_the_lower_of_the_answerable_quantile_and_the_withheld_median():
    answerable = [0.60 + 0.01 * i for i in range(20)]
    # Withheld questions score far below: their median caps the floor.
    assert floor_from_similarities(answerable, [0.3] * 20).value == 0.3
    # They score as high as answerable ones: at most 1 in 20 answerable is declined.
    high = floor_from_similarities(answerable, [0.9] * 20)
    assert high.value == pytest.approx(0.6095)
    assert high.questions == 20
    assert "0.610" in high.describe() and "20 answerable" in high.describe()


def test_too_few_training_questions_derive_no_floor():
    few = floor_from_similarities([0.8] * (MIN_QUESTIONS - 1), [0.4] * 20)
    assert few.value is None
    assert f"fewer than {MIN_QUESTIONS}" in few.describe()


def test_the_setting_takes_a_cosine_or_auto():
    assert RetrievalConfig(min_similarity="auto").min_similarity == "auto"
    assert RetrievalConfig(min_similarity=1).min_similarity == 1.0
    for wrong in (1.5, -2, "high"):
        with pytest.raises(ValueError, match="min_similarity"):
            RetrievalConfig(min_similarity=wrong)


def test_the_floor_reads_questions_asked_plainly_and_answered_each_once(tmp_path):
    from tuneline.artifacts import write_jsonl
    from tuneline.rag.prompt import rag_messages

    def chat(question, reply, system=True):
        head = [{"role": "system", "content": "Be brief."}] if system else []
        return {"messages": [*head, {"role": "user", "content": question},
                             {"role": "assistant", "content": reply}]}

    water, patch = ENTRIES[0], ENTRIES[1]
    with_passages = rag_messages([{"role": "user", "content": patch[0]}], [], 500)
    rows = [chat(*water), chat(*water, system=False), chat(patch[0], DECLINE),
            {"messages": [*with_passages, {"role": "assistant", "content": patch[1]}]},
            chat("How do I tune a guitar by ear?", "I'm not sure, sorry.")]
    write_jsonl(tmp_path / "train.jsonl", rows)
    # The duplicate, the decline, the refusal and the copy with passages are left out.
    assert training_questions(tmp_path / "train.jsonl", DECLINE) == [water]


pytest.importorskip("lancedb")
pytest.importorskip("torch")

from tuneline.artifacts import read_jsonl  # noqa: E402
from tuneline.config import PipelineConfig  # noqa: E402
from tuneline.errors import ConfigError  # noqa: E402
from tuneline.pipeline import run_pipeline  # noqa: E402
from tuneline.rag.retrieve import Retriever  # noqa: E402


def _config(root, model_dir, entries=ENTRIES, floor="auto") -> PipelineConfig:
    faq = root / "faq.md"
    faq.write_text("# Household FAQ\n\n" + "\n".join(f"## {q}\n\n{a}\n" for q, a in entries),
                   encoding="utf-8")
    return PipelineConfig.model_validate({
        "run": {"name": "faq", "runs_dir": str(root / "runs"), "seed": 0},
        "model": {"base": str(model_dir)},
        "ingest": {"sources": [{"name": "pairs", "path": str(faq), "faq": True},
                               {"name": "docs", "path": str(faq), "chunk_size": 300,
                                "chunk_overlap": 0}]},
        "synthesize": {"conversations": [{"source": "pairs", "prompt": "question",
                                          "response": "answer"}],
                       "unanswerable": {"answer": DECLINE}},
        "index": {"enabled": True, "sources": ["docs"],
                  "retrieval": {"top_k": 2, "min_similarity": floor}},
        "curate": {"heldout_fraction": 0.2, "val_fraction": 0.0, "dev_fraction": 0.0,
                   "card": False},
        "train": {"epochs": 1, "precision": "fp32"},
        "evaluate": {"general_probe": False, "max_new_tokens": 8,
                     "reference_max_new_tokens": 8, "drift_baseline": False},
    })


@pytest.fixture(scope="module")
def curated(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("auto_floor")
    cfg = _config(root, tiny_model_dir)
    return cfg, run_pipeline(cfg, until="curate").artifacts["curate"]


def test_auto_derives_a_floor_from_the_training_questions_alone(curated):
    cfg, artifact = curated
    retriever = Retriever.for_run(cfg)
    floor = retriever.similarity_floor()
    derived = retriever.derived_floor
    trained = [row for row in read_jsonl(artifact.path / "train.jsonl")]
    # Every training question is asked; each finds its own section among its passages.
    assert derived.questions == len(trained) >= MIN_QUESTIONS
    assert floor == derived.value == min(derived.answerable_quantile, derived.withheld_median)
    assert 0.2 < floor < 0.9
    # A question about none of the sections keeps no passage; a trained one keeps its own.
    off_topic, on_topic = "What is the boiling point of mercury?", ENTRIES[0][0]
    kept = retriever.search([off_topic, on_topic])
    unfloored = retriever.search([off_topic, on_topic], floor=False)
    assert kept[0] == [] and len(unfloored[0]) == 2
    assert any("three weeks" in hit.passage.text for hit in kept[1])


def test_the_floor_comes_from_the_training_file_alone(curated, tmp_path):
    cfg, artifact = curated
    derived = Retriever.for_run(cfg)
    derived.similarity_floor()
    # The same training chats where no evaluated set lies beside them: the same floor.
    (tmp_path / "train.jsonl").write_bytes((artifact.path / "train.jsonl").read_bytes())
    alone = Retriever.for_run(cfg)
    alone.floor_source = (tmp_path / "train.jsonl", DECLINE)
    assert alone.similarity_floor() == derived.similarity_floor()
    # Fewer training questions move it: it is derived from them.
    rows = read_jsonl(tmp_path / "train.jsonl")
    (tmp_path / "fewer.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:12]))
    fewer = Retriever.for_run(cfg)
    fewer.floor_source = (tmp_path / "fewer.jsonl", DECLINE)
    assert fewer.similarity_floor() != derived.similarity_floor()
    assert fewer.derived_floor.questions == 12


def test_auto_changes_neither_the_index_nor_the_training_data(curated, tiny_model_dir):
    cfg, _ = curated
    update = {"retrieval": cfg.index.retrieval.model_copy(update={"min_similarity": None})}
    again = run_pipeline(cfg.model_copy(update={"index": cfg.index.model_copy(update=update)}),
                         until="curate")
    assert again.artifacts["index"].skipped and again.artifacts["curate"].skipped


def test_auto_without_training_questions_says_what_is_missing(curated):
    cfg, _ = curated
    retriever = Retriever.for_run(cfg)
    retriever.floor_source = (retriever.floor_source[0].with_name("missing.jsonl"), DECLINE)
    with pytest.raises(ConfigError, match="missing.jsonl"):
        retriever.search(["How do I water a cactus?"])


def test_a_small_faq_gets_no_floor_and_every_passage(tmp_path, tiny_model_dir):
    cfg = _config(tmp_path, tiny_model_dir, ENTRIES[:8])
    run_pipeline(cfg, until="curate")
    retriever = Retriever.for_run(cfg)
    assert retriever.similarity_floor() is None
    assert "fewer than" in retriever.derived_floor.reason
    assert len(retriever.search(["What is the boiling point of mercury?"])[0]) == 2


def test_evaluate_records_the_derived_floor_and_declines_what_it_leaves_bare(tmp_path,
                                                                             tiny_model_dir):
    cfg = _config(tmp_path, tiny_model_dir)
    evaluated = run_pipeline(cfg, until="evaluate").artifacts["evaluate"]
    floor = evaluated.manifest["details"]["similarity_floor"]
    assert floor["value"] is not None and floor["questions"] >= MIN_QUESTIONS
    assert f"Similarity floor (auto): {floor['value']:.3f}" in (
        evaluated.path / "report.md").read_text()
    retriever = Retriever.for_run(cfg)
    assert retriever.similarity_floor() == floor["value"]
    predictions = [json.loads(line) for line in
                   (evaluated.path / "predictions.jsonl").read_text().splitlines()]
    withheld = [p for p in predictions if p["set"] == "withheld"]
    bare = [p for p in withheld if not p["retrieved"]]
    # The floor is the withheld median here: some withheld questions keep no passage, and
    # are declined without the model; the held-out ones keep their own section.
    assert 0 < len(bare) < len(withheld)
    assert all(p[f"{v}_answer"] == DECLINE for p in bare for v in ("base+rag", "tuned+rag"))
    assert all(p["retrieved"] for p in predictions if p["set"] == "reference")
    # Another floor is another evaluation; training is kept.
    update = {"retrieval": cfg.index.retrieval.model_copy(update={"min_similarity": 0.9})}
    again = run_pipeline(cfg.model_copy(update={"index": cfg.index.model_copy(update=update)}),
                         until="evaluate")
    assert again.artifacts["train"].skipped and not again.artifacts["evaluate"].skipped
