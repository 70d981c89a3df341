"""`uv pip install` into this virtual environment, from where pip would install.

uv reads no pip configuration, so a machine that points pip at a mirror, a local wheel folder,
a constraints file or its own CA (pip.conf, PIP_* variables) would install from PyPI instead.
This asks pip what it resolved from all of that and passes it on; the Makefile runs it with
the venv's Python, whose pip and uv it uses. Arguments go to `uv pip install` unchanged;
`--print` first prints the command instead of running it.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

DEFAULT_INDEX = "https://pypi.org/simple"


def pip_options() -> Any:
    """pip's install options as pip resolves them: every config file in its order, then PIP_*
    variables (pip's internal API; it has kept this shape for years)."""
    from pip._internal.commands import create_command

    options, _ = create_command("install").parse_args([])
    return options


def uv_arguments(options: Any) -> list[str]:
    # pip takes the best version any index offers; uv by default only the first index's.
    arguments = ["--index-strategy", "unsafe-best-match"]
    if options.no_index:
        arguments.append("--no-index")
    if options.index_url and options.index_url != DEFAULT_INDEX:
        arguments += ["--index-url", options.index_url]
    for option, values in (("--extra-index-url", options.extra_index_urls),
                           ("--find-links", options.find_links),
                           ("--constraint", options.constraints),
                           ("--allow-insecure-host", options.trusted_hosts)):
        for value in values:
            arguments += [option, value]
    return arguments


def uv_environment(options: Any) -> dict[str, str]:
    """pip's CA bundle and proxy, in the variables uv reads."""
    environment = dict(os.environ)
    if options.cert:
        environment["SSL_CERT_FILE"] = options.cert
    if options.proxy:
        environment.setdefault("HTTPS_PROXY", options.proxy)
        environment.setdefault("HTTP_PROXY", options.proxy)
    return environment


def main(argv: list[str]) -> None:
    printing = argv[:1] == ["--print"]
    options = pip_options()
    uv = Path(sys.executable).with_name("uv")
    command = [str(uv), "pip", "install", "--quiet", "--python", sys.executable,
               *uv_arguments(options), *argv[printing:]]
    if printing:
        print(shlex.join(command))
        return
    os.execve(uv, command, uv_environment(options))


if __name__ == "__main__":
    main(sys.argv[1:])
