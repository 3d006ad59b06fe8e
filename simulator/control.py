"""The simulator's control API (FastAPI, served by uvicorn inside the simulator's own asyncio loop), which
``edgefleet sim status`` and ``edgefleet sim fault ...`` call:

- ``GET /status`` (``?site=`` for one site and its boxes)
- ``GET /faults``, ``POST /faults`` (201 with the fault), ``DELETE /faults/{id}``, ``DELETE /faults`` (all, or
  ``?box=`` / ``?site=``)
- the receivers of ``simulator.inbox``: ``POST /receivers/dingtalk/{robot}/robot/send``,
  ``POST /receivers/webhook/{name}``, ``GET /receivers/messages?since=N`` (``edgefleet sim inbox``)

Every route is ``async def`` on purpose: it then runs on the loop that owns the boxes, never in a worker
thread, so the simulation needs no locks. Errors are JSON ``{"error": ..., "field": ...}`` with 400 (a request
that cannot be right), 404 (no such box, site or fault) or 409 (right, but not now).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from simulator.faults import Fault, FaultRejected, FaultRequest
from simulator.running import Simulation

STATUS_BY_REASON: Final = {"invalid": 400, "not-found": 404, "conflict": 409}


class FaultBody(BaseModel):
    """``POST /faults``: which fields a kind needs is checked by ``simulator.faults``, with its messages."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    box: str | None = None
    site: str | None = None
    seconds: float | None = None
    gpu: int | None = None
    temperature_c: float | None = None
    offset_s: float | None = None
    count: int | None = None
    variant: str | None = None
    cluster: str | None = None
    rate: float | None = None
    errors: str | None = None
    version: str | None = None
    app: str | None = None
    gpu_model: str | None = None
    mode: str | None = None
    delay_s: float | None = None
    by: float | None = None


def get_simulation(request: Request) -> Simulation:
    simulation: Simulation = request.app.state.simulation
    return simulation


SimulationDep = Annotated[Simulation, Depends(get_simulation)]


def fault_view(fault: Fault, simulation: Simulation) -> dict[str, Any]:
    """A fault as the API shows it: wall-clock times, seconds left, and only the fields of its kind."""
    now = simulation.clock.monotonic()
    wall = simulation.clock.now()
    view: dict[str, Any] = {
        "id": fault.id,
        "kind": fault.kind,
        "site": fault.site,
        "box": fault.box,
        "started_at": round(wall - (now - fault.started_at), 3),
        "expires_at": None if fault.expires_at is None else round(wall + (fault.expires_at - now), 3),
        "remaining_s": None if fault.expires_at is None else round(max(0.0, fault.expires_at - now), 1),
    }
    if fault.kind == "overheat":
        view |= {"gpu": fault.gpu, "temperature_c": fault.temperature_c}
    elif fault.kind == "skew":
        view["offset_s"] = fault.offset_s
    elif fault.kind == "malformed":
        view |= {"variant": fault.variant, "payloads_left": fault.remaining}
    elif fault.kind in ("api-errors", "api-down"):
        view["cluster"] = fault.cluster
        if fault.kind == "api-errors":
            view |= {"rate": fault.rate, "errors": list(fault.errors)}
    elif fault.kind == "crash-loop":
        view |= {"version": fault.version, "app": fault.app, "gpu_model": fault.gpu_model}
    elif fault.kind == "pull":
        view |= {"mode": fault.mode, "delay_s": fault.delay_s}
    elif fault.kind == "slow":
        view |= {"version": fault.version, "app": fault.app, "gpu_model": fault.gpu_model, "by": fault.by}
    return view


def _error(status: int, message: str, field: str | None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message, "field": field})


def create_control_app(simulation: Simulation) -> FastAPI:
    app = FastAPI(title="edgefleet simulator", version="1", docs_url=None, redoc_url=None)
    app.state.simulation = simulation

    @app.exception_handler(FaultRejected)
    async def rejected(request: Request, exc: FaultRejected) -> JSONResponse:
        return _error(STATUS_BY_REASON[exc.reason], exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's 422 lists pydantic's internals; one line naming the field is what a person needs.
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
        field = ".".join(loc) or None
        where = f"field {field!r}: " if field else ""
        return _error(400, f"{where}{first.get('msg', 'invalid')}", field)

    @app.get("/status")
    async def status(sim: SimulationDep, site: Annotated[str | None, Query()] = None) -> dict[str, Any]:
        if site is not None:
            return sim.site_status(site)
        return sim.status()

    @app.get("/faults")
    async def list_faults(sim: SimulationDep) -> dict[str, Any]:
        now = sim.clock.monotonic()
        return {"faults": [fault_view(f, sim) for f in sim.faults.active(now)]}

    @app.post("/faults", status_code=201)
    async def add_fault(sim: SimulationDep, body: FaultBody) -> dict[str, Any]:
        fault = sim.inject(FaultRequest(**body.model_dump()))
        return fault_view(fault, sim)

    @app.delete("/faults/{fault_id}")
    async def clear_fault(sim: SimulationDep, fault_id: str) -> dict[str, Any]:
        return {"cleared": [fault_view(f, sim) for f in sim.clear(fault_id=fault_id)]}

    @app.delete("/faults")
    async def clear_faults(
        sim: SimulationDep,
        box: Annotated[str | None, Query()] = None,
        site: Annotated[str | None, Query()] = None,
    ) -> dict[str, Any]:
        return {"cleared": [fault_view(f, sim) for f in sim.clear(box=box, site=site)]}

    @app.post("/receivers/dingtalk/{robot}/robot/send")
    async def dingtalk_robot(sim: SimulationDep, robot: str, request: Request) -> dict[str, Any]:
        errcode, errmsg = sim.inbox.dingtalk(
            robot, dict(request.query_params), await request.body(), now=sim.clock.now()
        )
        return {"errcode": errcode, "errmsg": errmsg}

    @app.post("/receivers/webhook/{name}")
    async def webhook(sim: SimulationDep, name: str, request: Request) -> JSONResponse:
        if not sim.inbox.webhook(name, await request.body(), now=sim.clock.now()):
            return _error(400, "the body is not JSON", None)
        return JSONResponse({"accepted": True})

    @app.get("/receivers/messages")
    async def messages(sim: SimulationDep, since: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
        return {"messages": [m.view() for m in sim.inbox.messages(since)]}

    return app
