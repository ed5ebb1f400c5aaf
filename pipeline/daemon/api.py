"""The worker's HTTP API (FastAPI): streams, alerts, health and Prometheus metrics."""

from __future__ import annotations

import hmac
from typing import Protocol

from fastapi import Depends, FastAPI, Header, HTTPException, Response
from pydantic import BaseModel, Field

from pipeline.config import Config
from pipeline.daemon.worker import WorkerError
from pipeline.ingest.urls import UnsafeURL


class StreamService(Protocol):
    """What the API serves: one worker (``Worker``) or a fleet of them on Ray (``Fleet``)."""

    config: Config

    def add_stream(self, stream_id: str, url: str) -> dict: ...

    def remove_stream(self, stream_id: str) -> None: ...

    def list_streams(self) -> list[dict]: ...

    def recent_alerts(self, limit: int = 100) -> list[dict]: ...

    def health(self) -> dict: ...

    def render_metrics(self) -> bytes: ...


class NewStream(BaseModel):
    id: str = Field(min_length=1, max_length=128)
    url: str = Field(min_length=1, max_length=4096)


def create_app(worker: StreamService) -> FastAPI:
    """The API of a worker or fleet; mutating endpoints need ``Authorization: Bearer <daemon.token>``."""
    app = FastAPI(title="fakewatch worker", version="1")
    token = worker.config.daemon.token

    def authorised(authorization: str = Header(default="")) -> None:
        given = authorization.removeprefix("Bearer ").strip()
        if not token or not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(status_code=401, detail="missing or wrong bearer token")

    @app.post("/streams", status_code=201, dependencies=[Depends(authorised)])
    def add_stream(body: NewStream) -> dict:
        try:
            return worker.add_stream(body.id, body.url)
        except (WorkerError, UnsafeURL) as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None

    @app.delete("/streams/{stream_id}", status_code=204, dependencies=[Depends(authorised)])
    def remove_stream(stream_id: str) -> Response:
        try:
            worker.remove_stream(stream_id)
        except WorkerError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from None
        return Response(status_code=204)

    @app.get("/streams")
    def list_streams() -> list[dict]:
        return worker.list_streams()

    @app.get("/alerts")
    def alerts(limit: int = 100) -> list[dict]:
        return worker.recent_alerts(max(1, min(limit, 1000)))

    @app.get("/healthz")
    def healthz() -> dict:
        return worker.health()

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(worker.render_metrics(), media_type="text/plain; version=0.0.4")

    return app
