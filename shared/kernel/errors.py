"""RFC 9457 problem+json for every error, with the field and the reason."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.kernel.logging import request_id
from shared.kernel.writes import Changed

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://obruten.se/problems/"

log = logging.getLogger("obruten.errors")


class Problem(Exception):
    """Raise from any route or service function to answer with problem+json.

    `type` is a stable slug a client can switch on; `field` names the request field at
    fault, as a JSON pointer-like dotted path (e.g. `body.end_date`).
    """

    def __init__(
        self,
        status: int,
        type: str,
        title: str,
        detail: str | None = None,
        *,
        field: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.field = field
        self.extra = extra


def not_found(resource: str) -> Problem:
    return Problem(404, "not-found", f"{resource} not found", f"No {resource} with that id.")


def invalid(field: str, reason: str, *, status: int = 422, type: str = "invalid-field") -> Problem:
    return Problem(status, type, "Invalid request", reason, field=field, errors=[{"field": field, "reason": reason}])


def check_district(districts: Sequence[str], district: str, field: str) -> None:
    """An unknown district is a 422 naming the field and the districts there are (they are
    configuration, not secrets)."""
    if district not in districts:
        raise invalid(field, f"unknown district; expected one of: {', '.join(districts)}")


def sqlstate(exc: DBAPIError) -> str | None:
    """The SQLSTATE of a database error, whichever way the driver attached it."""
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    state = state or getattr(getattr(orig, "__cause__", None), "sqlstate", None)
    return state if isinstance(state, str) else None


def problem_response(
    status: int, type: str, title: str, detail: str | None = None, instance: str | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {"type": TYPE_BASE + type, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    # The id an operator finds this request by in the logs (shared/requestlog.py).
    rid = request_id.get()
    if rid is not None:
        body["request_id"] = rid
    headers = {"Retry-After": "5"} if status == 503 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "description": "A stable URI a client can switch on."},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "field": {"type": ["string", "null"], "description": "The request field at fault, e.g. `body.end_date`."},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": ["string", "null"]}, "reason": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# What the kernel can answer on any /v1 operation, whatever the route does: the seam (401, 403,
# 404 for a record outside the caller's rows), the rules (409, 422), the hardening (413 and 429
# on writes) and an unreachable database (503). The 403 text names the policy's module as it
# was when the documents were frozen (now shared/web/policy.py): the published OpenAPI
# documents do not change with a move inside the code (tests/kernel/test_openapi_frozen.py).
_COMMON_PROBLEMS = {
    "401": "No or an invalid bearer token.",
    "403": "The role may not do this (shared/policy.py).",
    "404": "No such record among the caller's rows.",
    "409": "Conflicts with the current state.",
    "422": "Invalid request: `field` names what to correct.",
    "503": "A dependency is unavailable; nothing was written. Retry later.",
}
_WRITE_PROBLEMS = {
    "400": "The body is not well-formed JSON.",
    "413": "Request body too large.",
    "429": "Too many write requests from this client.",
}


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Declares the problem+json answers on every /v1 operation of an OpenAPI document (FastAPI
    documents only its own 422 shape, which these services never send)."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for path, item in schema.get("paths", {}).items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in item.items():
            problems = dict(_COMMON_PROBLEMS)
            if method.upper() in {"POST", "PUT", "PATCH", "DELETE"}:
                problems.update(_WRITE_PROBLEMS)
            if "application/x-ndjson" in operation.get("requestBody", {}).get("content", {}):
                # A bulk import (shared/web/imports.py).
                problems["415"] = "The body is not application/x-ndjson."
            responses = operation.setdefault("responses", {})
            for status, description in problems.items():
                responses[status] = {
                    "description": description,
                    "content": {PROBLEM_JSON: {"schema": _PROBLEM_REF}},
                }
    components = schema["components"]["schemas"]
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc)


async def _handle_problem(request: Request, exc: Problem) -> JSONResponse:
    return problem_response(exc.status, exc.type, exc.title, exc.detail, request.url.path, field=exc.field, **exc.extra)


async def _handle_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = []
    for err in exc.errors():
        reason = str(err.get("msg", "invalid"))
        # pydantic prefixes messages raised from validators with "Value error, ".
        reason = reason.removeprefix("Value error, ")
        errors.append({"field": _field_path(err.get("loc", ())), "reason": reason})
    first = errors[0] if errors else {"field": None, "reason": "invalid request"}
    return problem_response(
        422,
        "validation-error",
        "Invalid request",
        f"{first['field']}: {first['reason']}",
        request.url.path,
        field=first["field"],
        errors=errors,
    )


async def _handle_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    slug = {401: "unauthorized", 403: "forbidden", 404: "not-found", 405: "method-not-allowed"}.get(
        exc.status_code, "http-error"
    )
    resp = problem_response(exc.status_code, slug, str(exc.detail), None, request.url.path)
    if exc.headers:
        resp.headers.update(exc.headers)
    return resp


async def _handle_integrity(request: Request, exc: IntegrityError) -> JSONResponse:
    # Routes check what they can first; this is the race between two writers.
    log.info("integrity conflict", extra={"path": request.url.path, "constraint": _constraint(exc)})
    return problem_response(
        409,
        "conflict",
        "Conflict",
        "The request conflicts with the current state; retry after reading it.",
        request.url.path,
        constraint=_constraint(exc),
    )


# Set on the answer the request may be run again after (a lost deadlock; a connection that
# died before COMMIT): shared/web/contention.py reruns it and strips the header.
RERUN_HEADER = "x-obruten-contention"


async def _handle_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable", extra={"path": request.url.path, "error": type(exc).__name__})
    resp = problem_response(
        503,
        "unavailable",
        "Service unavailable",
        "The database is unreachable; nothing was written. Retry later.",
        request.url.path,
    )
    if getattr(request.state, "rerun_safe", False):
        # shared/kernel/db.py get_session: nothing of the request was committed.
        resp.headers[RERUN_HEADER] = "1"
    return resp


async def _handle_dbapi(request: Request, exc: DBAPIError) -> JSONResponse:
    if is_disconnect(exc):
        return await _handle_unavailable(request, exc)
    if sqlstate(exc) in ("40001", "40P01"):
        # A deadlock or serialization failure: nothing was written.
        log.warning("lock contention", extra={"path": request.url.path, "sqlstate": sqlstate(exc)})
        return _contention(request)
    log.exception("database error", extra={"path": request.url.path})
    return problem_response(500, "internal", "Internal error", None, request.url.path)


async def _handle_changed(request: Request, exc: Changed) -> JSONResponse:
    # A record read without a lock changed before the guarded write (shared/kernel/writes.py).
    log.info("record changed under a write", extra={"path": request.url.path})
    return _contention(request)


def _contention(request: Request) -> JSONResponse:
    """Marked so that shared/web/contention.py runs the request again; 503 if it keeps losing."""
    detail = "Concurrent changes to the same records; nothing was written. Retry."
    resp = problem_response(503, "contention", "Busy", detail, request.url.path)
    resp.headers[RERUN_HEADER] = "1"
    resp.headers["Retry-After"] = "1"
    return resp


async def _handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", extra={"path": request.url.path})
    return problem_response(500, "internal", "Internal error", None, request.url.path)


def install_error_handlers(app: FastAPI) -> None:
    """Every error answers problem+json: ours, FastAPI's validation, Starlette's HTTP errors,
    the database's conflicts and outages, and anything unexpected (a 500 that says nothing)."""
    app.add_exception_handler(Problem, _handle_problem)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _handle_validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _handle_http)  # type: ignore[arg-type]
    app.add_exception_handler(IntegrityError, _handle_integrity)  # type: ignore[arg-type]
    for unavailable in (OperationalError, InterfaceError, OSError, TimeoutError):
        app.add_exception_handler(unavailable, _handle_unavailable)
    app.add_exception_handler(DBAPIError, _handle_dbapi)  # type: ignore[arg-type]
    app.add_exception_handler(Changed, _handle_changed)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _handle_unexpected)


# SQLSTATE class 08 (connection exception) and the server going down or not yet up (57P01
# admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now). asyncpg reports these as a
# plain DBAPIError without invalidating the connection, so without this check a restart of
# PostgreSQL answers 500 instead of 503.
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03")


def is_disconnect(exc: BaseException) -> bool:
    """The connection died under a statement, or the server is shutting down or not yet up."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    state = sqlstate(exc)
    return state is not None and state.startswith(_UNAVAILABLE_STATES)


def _constraint(exc: IntegrityError) -> str | None:
    orig = getattr(exc, "orig", None)
    cause = getattr(orig, "__cause__", None)
    name = getattr(cause, "constraint_name", None) or getattr(orig, "constraint_name", None)
    return str(name) if name else None
