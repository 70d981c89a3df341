"""The Makefile installs with uv, which reads no pip configuration: tools/uv_install_args.py
turns pip's own settings into uv's arguments, with pip's precedence."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "tools" / "uv_install_args.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("uv_install_args", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_settings_follow_pips_precedence(tool):
    listing = "\n".join([
        "global.index-url='https://mirror.example/simple'",
        "global.find-links='/opt/wheels'",
        "install.find-links='/srv/wheels /srv/more'",
        ":env:.index-url='https://env.example/simple'",
        "global.timeout='60'",
        "site.constraint='/ignored.txt'",
    ])
    assert tool.pip_settings(listing) == {"index-url": "https://env.example/simple",
                                          "find-links": "/srv/wheels /srv/more",
                                          "timeout": "60"}


def test_uv_arguments_carry_indexes_links_constraints(tool):
    arguments = tool.uv_arguments({
        "extra-index-url": "file:///a/simple file:///b/simple", "find-links": "/opt/wheels",
        "constraint": "/etc/c.txt", "no-index": "true", "timeout": "60"})
    assert arguments == ["--index-strategy", "unsafe-best-match",
                         "--extra-index-url", "file:///a/simple",
                         "--extra-index-url", "file:///b/simple", "--find-links", "/opt/wheels",
                         "--constraint", "/etc/c.txt", "--no-index"]


def test_reads_this_pips_configuration(tmp_path):
    config = tmp_path / "pip.conf"
    config.write_text("[global]\nfind-links = /opt/local-wheels\n[install]\n"
                      "constraint = /etc/pins.txt\n", encoding="utf-8")
    env = {"PIP_CONFIG_FILE": str(config), "PATH": "/usr/bin:/bin"}
    printed = subprocess.run([sys.executable, str(SCRIPT)], env=env, check=True,
                             capture_output=True, text=True).stdout.split()
    assert printed[printed.index("--find-links") + 1] == "/opt/local-wheels"
    assert printed[printed.index("--constraint") + 1] == "/etc/pins.txt"
