"""Question-answer pairs written by an LLM (an external service, faked over real HTTP) about
document chunks: grounded pairs become conversations with their chunk's provenance, the rest
are counted by reason."""

from __future__ import annotations

import json

import pytest

from conftest import serve_in_thread
from fakes.judge_llm import fake_judge
from tuneline.errors import ConfigError
from tuneline.ingest.records import Record
from tuneline.synthesize.config import DocumentQaConfig
from tuneline.synthesize.document_qa import document_conversations, grounding_problem

CHUNK = ("Hold the RESET button on the back of the Lumo R2 for 15 seconds until the ring light "
         "blinks amber. The router then restarts with factory settings, which erases the Wi-Fi "
         "name and password.")


def _pair(question, answer, evidence, fact="15 seconds"):
    return json.dumps({"question": question, "answer": answer, "evidence": evidence,
                       "fact": fact})


REPLY = "\n".join([
    _pair("How long do you hold RESET on the Lumo R2?",
          "Hold the RESET button for 15 seconds until the ring light blinks amber.",
          "for 15 seconds until the ring light blinks amber"),
    _pair("What does the passage say about resetting?", "Hold RESET for 15 seconds.",
          "Hold the RESET button"),
    _pair("Does a factory reset of the Lumo R2 keep the Wi-Fi password?",
          "No, it erases the Wi-Fi name and password.", "erases the Wi-Fi name and password",
          "erases"),
    _pair("How long does a Lumo R2 firmware update take?",
          "A firmware update takes about five minutes over the cloud service.",
          "restarts with factory settings"),
    _pair("Where is the RESET button of the Lumo R2?", "On the back.",
          "the RESET button is on the front"),
    "not json at all",
])


def test_grounding_rules():
    ok = {"questions": ["How long?"], "answer": "15 seconds.", "evidence": "for 15 seconds"}
    assert grounding_problem(ok, CHUNK, 0.6) is None
    assert grounding_problem({**ok, "questions": ["How long"]}, CHUNK, 0.6) == "not_a_question"
    assert grounding_problem({**ok, "questions": ["What does this document say?"]}, CHUNK,
                             0.6) == "question_points_at_document"
    assert grounding_problem({**ok, "evidence": "for 20 seconds"}, CHUNK, 0.6) == (
        "evidence_not_in_chunk")


def test_grounded_pairs_become_conversations_and_the_rest_are_counted(tmp_path):
    pytest.importorskip("fastapi")
    chunk = Record("manual", "manual.md", 12, {"text": CHUNK, "title": "Manual > Reset",
                                               "chunk": "3", "file": "manual.md"}, "manual.md#3")
    short = Record("manual", "manual.md", 30, {"text": "Contents", "title": "Manual",
                                               "chunk": "4", "file": "manual.md"}, "manual.md#4")
    app = fake_judge(lambda prompt: REPLY)
    with serve_in_thread(app) as url:
        cfg = DocumentQaConfig(enabled=True, sources=["manual"], system="Be brief.",
                               min_chunk_chars=100,
                               endpoint={"base_url": url, "model": "writer", "max_retries": 0,
                                         "api_key_env": None})
        talks, report, usage = document_conversations(
            cfg, {"manual": [chunk, short]},
            {"manual": {"columns": ["text", "title", "chunk", "file"]}}, 0, None)
    assert len(app.state.bodies) == 1  # the short chunk is not sent
    assert "Manual > Reset" in app.state.bodies[0]["messages"][0]["content"]
    assert [t.messages[1]["content"] for t in talks] == [
        "How long do you hold RESET on the Lumo R2?",
        "Does a factory reset of the Lumo R2 keep the Wi-Fi password?"]
    assert talks[0].messages[0] == {"role": "system", "content": "Be brief."}
    assert talks[0].thread == "manual.md#3" == talks[1].thread
    assert talks[0].provenance["lines"] == [12]
    assert dict(report.rejected) == {"question_points_at_document": 1,
                                     "answer_not_in_chunk": 1, "evidence_not_in_chunk": 1}
    assert report.bad_lines["not_json"] == 1 and report.accepted == 2
    assert usage.requests == 1


def test_sources_must_be_document_chunks():
    cfg = DocumentQaConfig(enabled=True, sources=["prices"],
                           endpoint={"base_url": "http://127.0.0.1:9", "model": "m"})
    with pytest.raises(ConfigError, match="'prices' is not an ingest source of document"):
        document_conversations(cfg, {"prices": []}, {"prices": {"columns": ["sku", "eur"]}},
                               0, None)
    with pytest.raises(ValueError, match="needs documents.endpoint"):
        DocumentQaConfig(enabled=True, sources=["manual"])
