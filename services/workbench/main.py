"""The workbench process: ``hotline serve workbench`` (HTTP only, port settings.ports.workbench_http)."""

from __future__ import annotations

import uvicorn

from hotline.settings import get_settings
from services.workbench.app import build

NAME = "workbench"


def serve() -> None:
    settings = get_settings()
    uvicorn.run(build(settings), host=settings.bind_host, port=settings.ports.workbench_http,
                log_level=settings.log_level.lower(), access_log=False)
