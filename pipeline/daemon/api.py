"""The worker's HTTP API (FastAPI): streams, alerts, health and Prometheus metrics."""

from __future__ import annotations

import hmac

from fastapi import Depends, FastAPI, Header, HTTPException, Response
from pydantic import BaseModel, Field

from pipeline.daemon.worker import Worker, WorkerError
from pipeline.ingest.urls import UnsafeURL


class NewStream(BaseModel):
    id: str = Field(min_length=1, max_length=128)
    url: str = Field(min_length=1, max_length=4096)


def create_app(worker: Worker) -> FastAPI:
    """The API of one worker; mutating endpoints need ``Authorization: Bearer <daemon.token>``."""
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
        return worker.outbox.recent(max(1, min(limit, 1000)))

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok", "streams": len(worker.streams), "outbox": worker.outbox.counts()}

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(worker.metrics.render(), media_type="text/plain; version=0.0.4")

    return app
