"""The vLLM engine behind the Engine protocol; needs CUDA and vllm (skipped elsewhere)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("vLLM needs a CUDA GPU", allow_module_level=True)
pytest.importorskip("vllm")

from conftest import build_random_adapter  # noqa: E402
from tuneline.serve.config import ServeConfig  # noqa: E402
from tuneline.serve.engines.engine import (  # noqa: E402
    FinalEvent,
    GenerationRequest,
    SamplingParams,
)
from tuneline.serve.engines.vllm_engine import VllmEngine  # noqa: E402


def test_vllm_engine_streams_and_selects_adapters(tiny_model_dir, tmp_path):
    import threading

    adapter = build_random_adapter(tiny_model_dir, tmp_path / "a", seed=1)
    engine = VllmEngine.load(str(tiny_model_dir), {"a": adapter}, ServeConfig())
    try:
        prompt = engine.encode_chat([{"role": "user", "content": "Capital of Peru?"}], None)
        finals: dict[str | None, FinalEvent] = {}
        done = threading.Event()

        def sink_for(name):
            def sink(event):
                if isinstance(event, FinalEvent):
                    finals[name] = event
                    if len(finals) == 2:
                        done.set()
            return sink

        for name in (None, "a"):
            engine.submit(GenerationRequest(prompt, SamplingParams(16), name), sink_for(name))
        assert done.wait(120)
        assert all(f.completion_tokens > 0 and f.finish_reason != "error" for f in finals.values())
        assert finals[None].token_ids != finals["a"].token_ids
    finally:
        engine.close()
