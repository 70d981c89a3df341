import pytest

from tuneline.artifacts import StageResult, load_artifact, plan_stage, run_stage


def _writer(calls, text="x"):
    def work(tmp):
        calls.append(tmp)
        (tmp / "out.txt").write_text(text)
        return StageResult(counts={"n": 1})
    return work


def test_unchanged_stage_is_reused_and_changed_inputs_rerun(tmp_path):
    calls = []
    first = run_stage("s", tmp_path / "s", "cfg", {"in": "1"}, _writer(calls))
    again = run_stage("s", tmp_path / "s", "cfg", {"in": "1"}, _writer(calls))
    assert not first.skipped and again.skipped and len(calls) == 1
    assert again.output_hash == first.output_hash
    run_stage("s", tmp_path / "s", "cfg", {"in": "2"}, _writer(calls, "y"))
    run_stage("s", tmp_path / "s", "cfg2", {"in": "2"}, _writer(calls, "y"))
    run_stage("s", tmp_path / "s", "cfg2", {"in": "2"}, _writer(calls, "y"), force=True)
    assert len(calls) == 4
    assert (tmp_path / "s" / "out.txt").read_text() == "y"


def test_a_failing_stage_leaves_the_previous_output_and_no_temp_folder(tmp_path):
    run_stage("s", tmp_path / "s", "cfg", {}, _writer([]))

    def broken(tmp):
        (tmp / "out.txt").write_text("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        run_stage("s", tmp_path / "s", "cfg", {"in": "new"}, broken)
    assert (tmp_path / "s" / "out.txt").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_a_folder_without_manifest_is_not_trusted(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "out.txt").write_text("stale")
    assert load_artifact("s", tmp_path / "s") is None
    calls = []
    run_stage("s", tmp_path / "s", "cfg", {}, _writer(calls))
    assert len(calls) == 1 and (tmp_path / "s" / "out.txt").read_text() == "x"


def test_planning_gives_the_fingerprint_a_run_would_write_and_does_no_work(tmp_path):
    calls = []

    def stage(inputs, force=False):
        return lambda: run_stage("s", tmp_path / "s", "cfg", inputs, _writer(calls), force)

    before = plan_stage(stage({"in": "1"}))
    assert calls == [] and not (tmp_path / "s").exists() and not before.reusable
    written = stage({"in": "1"})()
    assert written.manifest["fingerprint"] == before.fingerprint
    after = plan_stage(stage({"in": "1"}))
    assert (after.fingerprint, after.reusable) == (before.fingerprint, True)
    assert not plan_stage(stage({"in": "1"}, force=True)).reusable  # a forced stage runs
    changed = plan_stage(stage({"in": "2"}))
    assert changed.fingerprint != before.fingerprint and not changed.reusable
    assert len(calls) == 1
    assert stage({"in": "1"})().skipped  # planning left the normal path alone
