"""The ASGI entry point for `aftersales serve`: the app plus the in-process deadline worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from aftersales import worker
from aftersales.config import Settings

from .app import build_context, create_app


def app() -> FastAPI:
    """Factory used by uvicorn (``factory=True``)."""
    settings = Settings()
    ctx = build_context(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = None
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.server_threads
        if settings.worker_in_process:
            _thread, stop = worker.start_in_thread(ctx, settings.worker_poll_seconds)
        yield
        if stop is not None:
            stop.set()
        ctx.engine.dispose()

    application = create_app(settings, ctx)
    application.router.lifespan_context = lifespan
    return application
