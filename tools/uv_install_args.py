"""Print pip's index settings as `uv pip install` arguments.

uv reads no pip configuration, so a machine that points pip at a mirror, a local wheel folder
or a constraints file (pip.conf, PIP_* variables) would install from PyPI instead. The Makefile
passes these arguments on; run it with the virtual environment's Python (it asks that pip).
"""

from __future__ import annotations

import shlex
import subprocess
import sys

# pip's setting -> uv's option; every value may hold several entries separated by whitespace.
OPTIONS = {
    "index-url": "--index-url",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
    "constraint": "--constraint",
    "trusted-host": "--allow-insecure-host",
}
FLAGS = {"no-index": "--no-index"}
# Later sections win, as in pip: an environment variable over install's, install's over global.
SECTION_ORDER = ("global", "install", ":env:")


def pip_settings(listing: str) -> dict[str, str]:
    """`pip config list` lines (`section.name='value'`) as {name: value}, by pip's precedence."""
    found: dict[str, dict[str, str]] = {}
    for line in listing.splitlines():
        key, sep, value = line.partition("=")
        section, dot, name = key.rpartition(".")
        if not (sep and dot) or section not in SECTION_ORDER:
            continue
        found.setdefault(section, {})[name] = " ".join(shlex.split(value))
    settings: dict[str, str] = {}
    for section in SECTION_ORDER:
        settings.update(found.get(section, {}))
    return settings


def uv_arguments(settings: dict[str, str]) -> list[str]:
    # pip takes the best version any index offers; uv by default only the first index's.
    arguments = ["--index-strategy", "unsafe-best-match"]
    for name, option in OPTIONS.items():
        for value in settings.get(name, "").split():
            arguments += [option, value]
    for name, flag in FLAGS.items():
        if settings.get(name, "").lower() in ("1", "true", "yes", "on"):
            arguments.append(flag)
    return arguments


def main() -> None:
    listing = subprocess.run([sys.executable, "-m", "pip", "config", "list"], check=True,
                             capture_output=True, text=True).stdout
    print(shlex.join(uv_arguments(pip_settings(listing))))


if __name__ == "__main__":
    main()
