from pathlib import Path

import pytest

from tuneline.config import PipelineConfig, load_config
from tuneline.errors import ConfigError

DEMO = Path(__file__).parents[1] / "examples" / "paris2024" / "tuneline.yaml"


def test_demo_config_loads_and_resolves_source_paths_from_the_config_folder():
    cfg = load_config(DEMO)
    assert cfg.run.name == "paris2024"
    assert all(s.path.is_file() for s in cfg.ingest.sources)
    assert cfg.ingest.sources[0].path.parent == DEMO.parent / "data"


def test_overrides_are_yaml_parsed_and_applied(tmp_path):
    cfg = load_config(DEMO, ["train.epochs=2", "run.name=quick", "train.lora.r=4"])
    assert (cfg.train.epochs, cfg.run.name, cfg.train.lora.r) == (2.0, "quick", 4)


def test_every_problem_is_reported_at_once(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "train:\n  epochs: -1\n  learnign_rate: 0.1\n"
        "ingest:\n  sources:\n    - {name: t, path: missing.csv}\n"
        "serve:\n  port: 99999\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(bad)
    problems = "\n".join(caught.value.problems)
    assert len(caught.value.problems) == 4
    assert "train.epochs" in problems
    assert "train.learnign_rate: unknown key" in problems
    assert "ingest.sources.0.path" in problems and "missing.csv" in problems
    assert "serve.port" in problems
    assert str(bad) in str(caught.value)


def test_invalid_yaml_names_line_and_column(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("train:\n  epochs: [1, 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.yaml:\d+:\d+: invalid YAML"):
        load_config(bad)


def test_malformed_override_is_a_config_error():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(None, ["train.epochs"])
    with pytest.raises(ConfigError, match="override 'run.name': the value is not valid YAML"):
        load_config(None, ["run.name=[unclosed"])
    with pytest.raises(ConfigError, match="'epochs' is not a section"):
        load_config(None, ["train.epochs=2", "train.epochs.x=1"])


def test_schema_lists_sections_and_forbids_extra_keys():
    schema = PipelineConfig.model_json_schema()
    assert {"run", "model", "ingest", "synthesize", "curate", "train", "evaluate",
            "register", "serve"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False


def test_section_hash_changes_only_with_its_sections():
    a = load_config(DEMO)
    b = load_config(DEMO, ["serve.port=9000"])
    c = load_config(DEMO, ["train.epochs=1"])
    assert a.section_hash("train") == b.section_hash("train")
    assert a.section_hash("train") != c.section_hash("train")


def test_a_saved_resolved_config_loads_again(tmp_path):
    from tuneline.config import load_config, save_config

    example = Path(__file__).parents[1] / "examples" / "paris2024" / "tuneline.yaml"
    cfg = load_config(example, [])
    save_config(cfg, tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml", []) == cfg


def test_stage_hashes_follow_the_seed_not_the_repeats_or_the_run_folder():
    """`run.repeats=3` after a single run reuses seed 0's stages instead of retraining them."""
    from tuneline.config import PipelineConfig

    one = PipelineConfig.model_validate({"run": {"name": "a", "repeats": 1}})
    three = PipelineConfig.model_validate({"run": {"name": "b", "repeats": 3,
                                                   "runs_dir": "elsewhere"}})
    seeded = PipelineConfig.model_validate({"run": {"name": "a", "seed": 1}})
    assert one.section_hash("synthesize", "run") == three.section_hash("synthesize", "run")
    assert one.section_hash("curate", "run") != seeded.section_hash("curate", "run")
