# syntax=docker/dockerfile:1
#
# One image for all five services of the district 12345 hotline platform, and a tools image.
#
#   docker build -t hotline-platform .
#   docker run --rm hotline-platform serve routing      # any of: intake routing supervision deputy_liaison metrics
#   docker build --target tools -t hotline-tools .      # + hotline_dev: `hotline simulate`, `hotline dlq`
#
# The service image (the last stage, the default target) carries only the runtime kit hotline/
# and services/: what the services run. The tools image adds hotline_dev/ (simulator, dead-letter
# tools) for operators. docker-compose.yml builds the service image once per service entry
# (cached) and sets the command, the environment (HOTLINE_*), the published ports and a /healthz
# HEALTHCHECK per service; its `tools` profile builds the tools image.
FROM python:3.11-slim AS kit

# uv from PyPI, pinned so `uv sync --frozen` reads uv.lock the way it was written.
ARG UV_VERSION=0.13.9

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

RUN pip install "uv==${UV_VERSION}"

# A CJK font for the metrics service's reports (charts and PDFs in Chinese).
RUN apt-get update && apt-get install -y --no-install-recommends fonts-wqy-microhei fontconfig \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# 1) dependencies only: this layer is rebuilt only when pyproject.toml or uv.lock change
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

# 2) the project itself: only the runtime kit, the services and the `hotline` command (cli/). It is
#    installed editable (uv's default) on purpose: the services read data files next to their modules
#    (hotline/data, services/routing/data, services/supervision/data) and settings derive REPO_ROOT (models/,
#    .run/) from the source location, i.e. /app.
COPY README.md ./
COPY hotline ./hotline
COPY services ./services
COPY cli ./cli
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev \
    && /app/.venv/bin/python -m compileall -q hotline services cli

# Runtime user: owns nothing under /app (code and venv stay read-only for it).
RUN groupadd --system --gid 10001 hotline \
    && useradd --system --uid 10001 --gid hotline --home-dir /home/hotline --create-home \
       --shell /usr/sbin/nologin hotline
USER hotline

ENV HOTLINE_BIND_HOST=0.0.0.0 \
    HOTLINE_LOG_JSON=true \
    PATH=/app/.venv/bin:$PATH

# HTTP (FastAPI: /healthz, /metrics, /docs) and gRPC ports of intake, routing, supervision,
# deputy_liaison, metrics (defaults of hotline.settings.PortSettings).
EXPOSE 8101 8102 8103 8104 8105 9101 9102 9103 9104 9105

# No HEALTHCHECK here: the port differs per service, docker-compose.yml sets one per service.
ENTRYPOINT ["hotline"]
CMD ["serve", "intake"]

# --- tools image: the kit plus hotline_dev (docker compose --profile tools run --rm tools ...) ---
FROM kit AS tools
USER root
COPY hotline_dev ./hotline_dev
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --reinstall-package hotline-platform \
    && /app/.venv/bin/python -m compileall -q hotline_dev
USER hotline
CMD ["--help"]

# --- the service image (default target): hotline/ and services/ only ---
FROM kit AS service
