"""The worker's HTTP API (FastAPI): streams, alerts (as JSON and as a review page with their
evidence), health and Prometheus metrics."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Protocol

from fastapi import Depends, FastAPI, Header, HTTPException, Response
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, Field

from pipeline.alerts import Alert, review_html
from pipeline.config import Config
from pipeline.daemon.worker import WorkerError
from pipeline.ingest.urls import UnsafeURL


class StreamService(Protocol):
    """What the API serves: one worker (``Worker``) or a fleet of them on Ray (``Fleet``)."""

    config: Config

    def add_stream(self, stream_id: str, url: str, seller: str | None = None) -> dict: ...

    def remove_stream(self, stream_id: str) -> None: ...

    def list_streams(self) -> list[dict]: ...

    def recent_alerts(self, limit: int = 100, stream: str | None = None) -> list[dict]: ...

    def health(self) -> dict: ...

    def render_metrics(self) -> bytes: ...


class NewStream(BaseModel):
    id: str = Field(min_length=1, max_length=128)
    url: str = Field(min_length=1, max_length=4096)
    # Whose stream it is: alerts then say whether the brand's brand.json authorizes that seller.
    seller: str | None = Field(default=None, min_length=1, max_length=128)


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
            return worker.add_stream(body.id, body.url, body.seller)
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
    def alerts(limit: int = 100, stream: str | None = None) -> list[dict]:
        """The recent alerts, newest first (``stream``: only that stream's)."""
        return worker.recent_alerts(max(1, min(limit, 1000)), stream)

    def recent(limit: int, stream: str | None = None) -> list[Alert]:
        return [Alert.from_json(d, "recent alert") for d in worker.recent_alerts(max(1, min(limit, 1000)), stream)]

    @app.get("/review", response_class=HTMLResponse)
    def review(limit: int = 100, stream: str | None = None) -> str:
        """The recent alerts (``stream``: only that stream's) as a page for reviewers, each with its
        evidence image."""

        def src(a: Alert) -> str | None:
            return f"evidence/{a.id}.jpg" if a.evidence and Path(a.evidence).is_file() else None

        title = "fakewatch: recent alerts" + (f" of {stream}" if stream is not None else "")
        return review_html(recent(limit, stream), src, title)

    @app.get("/evidence/{alert_id}.jpg")
    def evidence(alert_id: str) -> FileResponse:
        """A recent alert's evidence image. Only paths the worker itself recorded are served:
        the request names an alert, never a file."""
        for a in recent(1000):
            if a.id == alert_id and a.evidence and a.evidence.endswith(".jpg") and Path(a.evidence).is_file():
                return FileResponse(a.evidence, media_type="image/jpeg")
        raise HTTPException(status_code=404, detail=f"no evidence image for a recent alert {alert_id!r}")

    @app.get("/healthz")
    def healthz() -> dict:
        return worker.health()

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(worker.render_metrics(), media_type="text/plain; version=0.0.4")

    return app
