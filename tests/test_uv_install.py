"""The Makefile installs with uv, which reads no pip configuration: tools/uv_install.py asks
pip what it resolved (config files in pip's order, then PIP_* variables) and runs uv with it."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

SCRIPT = Path(__file__).parents[1] / "tools" / "uv_install.py"


def _printed(env: dict[str, str], *args: str) -> list[str]:
    run = subprocess.run([sys.executable, str(SCRIPT), "--print", *args],
                         env={"PATH": "/usr/bin:/bin", **env}, check=True,
                         capture_output=True, text=True)
    return shlex.split(run.stdout)


def _values(command: list[str], option: str) -> list[str]:
    return [command[i + 1] for i, word in enumerate(command) if word == option]


def test_pips_environment_reaches_uv():
    command = _printed({"PIP_INDEX_URL": "https://mirror.example/simple",
                        "PIP_EXTRA_INDEX_URL": "file:///x/simple",
                        "PIP_FIND_LINKS": "/srv/a /srv/b", "PIP_CONSTRAINT": "/etc/pins.txt",
                        "PIP_TRUSTED_HOST": "mirror.example"}, "-e", ".[all]")
    assert command[1:4] == ["pip", "install", "--quiet"]
    assert _values(command, "--index-url") == ["https://mirror.example/simple"]
    assert _values(command, "--extra-index-url") == ["file:///x/simple"]
    assert _values(command, "--find-links") == ["/srv/a", "/srv/b"]
    assert _values(command, "--constraint") == ["/etc/pins.txt"]
    assert _values(command, "--allow-insecure-host") == ["mirror.example"]
    assert _values(command, "--index-strategy") == ["unsafe-best-match"]
    assert command[-2:] == ["-e", ".[all]"]


def test_a_config_files_install_section_and_multiline_values(tmp_path):
    config = tmp_path / "pip.conf"
    config.write_text("[global]\nno-index = false\n[install]\nfind-links =\n    /opt/one\n"
                      "    /opt/two\nconstraint = /etc/pins.txt\n", encoding="utf-8")
    command = _printed({"PIP_CONFIG_FILE": str(config)})
    assert _values(command, "--find-links") == ["/opt/one", "/opt/two"]
    assert _values(command, "--constraint") == ["/etc/pins.txt"]
    assert "--no-index" not in command


@pytest.fixture(scope="module")
def tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location("uv_install", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pips_ca_bundle_and_proxy_go_to_uvs_variables(tool, monkeypatch):
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    environment = tool.uv_environment(SimpleNamespace(cert="/etc/corp-ca.pem",
                                                      proxy="http://proxy:3128"))
    assert environment["SSL_CERT_FILE"] == "/etc/corp-ca.pem"
    assert environment["HTTPS_PROXY"] == environment["HTTP_PROXY"] == "http://proxy:3128"
