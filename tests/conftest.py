"""Shared fixtures: a tiny offline chat model and a small CSV dataset, built once per session;
a throwaway PostgreSQL server."""

from __future__ import annotations

import contextlib
import csv
import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Under pytest-xdist every worker's torch would start one thread per core: two workers on two
# cores ran four threads that kept preempting each other (the train, replay and sizing tests
# took 83 s instead of 43 s). Each worker gets its share of the cores; the CLI processes the
# tests start inherit it. tuneline's set_cpu_threads leaves a set OMP_NUM_THREADS alone.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(
        1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

CAPITALS = [
    ("France", "Paris", "Europe"), ("Spain", "Madrid", "Europe"), ("Italy", "Rome", "Europe"),
    ("Germany", "Berlin", "Europe"), ("Poland", "Warsaw", "Europe"),
    ("Portugal", "Lisbon", "Europe"), ("Greece", "Athens", "Europe"),
    ("Norway", "Oslo", "Europe"), ("Sweden", "Stockholm", "Europe"),
    ("Finland", "Helsinki", "Europe"), ("Japan", "Tokyo", "Asia"), ("China", "Beijing", "Asia"),
    ("India", "New Delhi", "Asia"), ("Thailand", "Bangkok", "Asia"),
    ("Vietnam", "Hanoi", "Asia"), ("Egypt", "Cairo", "Africa"), ("Kenya", "Nairobi", "Africa"),
    ("Ghana", "Accra", "Africa"), ("Peru", "Lima", "America"), ("Chile", "Santiago", "America"),
]


def _corpus() -> list[str]:
    lines = [f"The capital of {c} is {k}. {c} is in {r}." for c, k, r in CAPITALS]
    lines += ["What is the capital city of", "Which continent is", "Name the capital of",
              "user assistant system ? . , : ' \" 0123456789 abcdefghijklmnopqrstuvwxyz"]
    return lines * 4


def build_tiny_chat_model(folder: Path, hidden_size: int = 64, layers: int = 2) -> Path:
    """A randomly initialised Llama (2 layers of width 64 unless asked for more) with a
    byte-level BPE tokenizer and ChatML template."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(_corpus(), trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>", bos_token=None)
    tokenizer.chat_template = CHATML
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_random_adapter(model_dir: Path, out: Path, seed: int) -> Path:
    """A LoRA adapter with random (non-zero) weights on the tiny model, with its tokenizer."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir),
                           LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                      init_lora_weights=False))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-llama"))


def write_capitals_csv(path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["country", "capital", "region"])
        writer.writerows(CAPITALS)
    return path


def tiny_pipeline_config(root: Path, model_dir: Path) -> dict:
    """A config dict for the whole pipeline on the capitals table and the tiny model."""
    data = write_capitals_csv(root / "capitals.csv")
    return {
        "run": {"name": "tiny", "runs_dir": str(root / "runs"), "seed": 0},
        # Its own cache folder: cached base answers never come from another test or run.
        "model": {"base": str(model_dir), "cache_dir": str(root / "cache")},
        "ingest": {"sources": [{"name": "capitals", "path": str(data)}]},
        "synthesize": {"templates": [{
            "name": "capital",
            "source": "capitals",
            "key": "{country}",
            "questions": ["What is the capital of {country}?",
                          "Name the capital city of {country}.",
                          "Which city is the capital of {country}?"],
            "answer": "The capital of {country} is {capital}.",
            "fact": "{capital}",
        }]},
        "curate": {"heldout_fraction": 0.1, "val_fraction": 0.1},
        "train": {"epochs": 4, "batch_size": 8, "learning_rate": 5e-3, "precision": "fp32"},
        # The drift baseline loads MiniLM; tests/monitor/test_version_baseline.py turns it on.
        "evaluate": {"max_new_tokens": 12, "batch_size": 8, "drift_baseline": False},
        "register": {"name": "capitals", "registry_dir": str(root / "registry")},
    }


def write_config(path: Path, data: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Run an ASGI app on a real loopback port in a thread; yields its /v1 base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.contextmanager
def tuneline_serve(*args: str, timeout_s: float = 120, env: dict[str, str] | None = None
                   ) -> Iterator[str]:
    """Start `tuneline serve ARGS --port P` as a real process; yields its /v1 base URL."""
    with tuneline_serve_process(*args, timeout_s=timeout_s, env=env) as (_, base_url):
        yield base_url


@contextlib.contextmanager
def tuneline_serve_process(*args: str, timeout_s: float = 120, env: dict[str, str] | None = None
                           ) -> Iterator[tuple[Any, str]]:
    """`tuneline serve ARGS --port P` as a real process: yields (process, /v1 base URL)."""
    import os
    import subprocess
    import sys

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tuneline.cli.main", "serve", *args, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **(env or {})},
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until_up(server, f"http://127.0.0.1:{port}/ready", timeout_s)
        yield server, base_url
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(30)


def wait_until_up(server: Any, url: str, timeout_s: float) -> None:
    """Poll `url` until it answers 2xx; fail with the process output if it exits or times out."""
    import httpx

    deadline = time.time() + timeout_s
    while True:
        try:
            httpx.get(url, timeout=2).raise_for_status()
            return
        except httpx.HTTPError:
            if server.poll() is not None or time.time() > deadline:
                if server.poll() is None:
                    server.kill()
                output = server.stdout.read()
                raise AssertionError(f"{server.args[0]} did not start:\n{output}") from None
            time.sleep(0.3)


# --- A throwaway PostgreSQL server (the SQL source and tickets tests) -------------------

def _pg_bin() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    found = candidates[0] if candidates else shutil.which("pg_ctl")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway cluster on loopback; as root the server runs as the `postgres` user."""
    pytest.importorskip("psycopg")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not installed (.ci/run installs them)")
    root = Path(tempfile.mkdtemp(prefix="tuneline-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()

    def pg(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, cwd=root)

    pg(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "tuneline", "-E", "UTF8")
    pg(str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(root / "log"), "-o",
       f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start")
    try:
        yield f"postgresql+psycopg://tuneline@127.0.0.1:{port}/postgres"
    finally:
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop")
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[dict]]]:
    """A real HTTP endpoint on loopback: yields its URL and the JSON bodies POSTed to it."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/drift", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture()
def pretend_cpu(monkeypatch: pytest.MonkeyPatch):
    """pretend_cpu("bf16-native"): the CPU class `train.precision: auto` sees on this machine."""
    from tuneline.machine import Machine
    from tuneline.train import precision

    def pretend(cpu_class: str) -> None:
        machine = Machine(cpu="test CPU", cpu_class=cpu_class, cores=2, memory_gib=8.0, gpu=None)
        monkeypatch.setattr(precision, "this_machine", lambda: machine)

    return pretend
