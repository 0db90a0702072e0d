"""The audit trail: who did what to which record, when, and what came of it.

Every /v1 request made with a valid token leaves one row in the service's append-only `audit`
table (a trigger refuses UPDATE and DELETE; see each service's migration 0002). Routes cannot
skip it, because they do not write it:

* A request whose route returns normally writes its row inside the request's own transaction,
  just before the commit (the `before_commit` hook of `shared.kernel.db.get_session`), in the same
  statement as the request's other deferred rows (shared/kernel/writes.py): a write and its audit
  row commit together or not at all, and a failing audit insert fails the request.
* Every other request (refused by the policy, a 404, a validation error, a crash, a route without
  a session) is written by `AuditMiddleware` in a short transaction of its own once the status is
  known, and the response is held until that row is committed: no answer leaves without its row.
  If the row cannot be written the caller gets 503 instead of the answer.

Requests without a valid token (401) are not audited (there is no one to name, and an anonymous
flood must not fill the table); they are counted in the metrics.

Rows name ids and route templates, never a path with its values, a query string or a body, so a
personnummer cannot reach the trail.
"""

from __future__ import annotations

import csv
import io
import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.kernel.db import SessionDep
from shared.kernel.errors import problem_response
from shared.kernel.writes import defer
from shared.web.policy import Access, v1_router
from shared.web.runtime import runtime
from shared.web.schemas import Instant, NameText, Offset, ShortText

log = logging.getLogger("obruten.audit")

OUTCOMES = ("allowed", "denied", "refused", "failed")
# What the seam keeps in the request's state (request.state.access, .audited_status).
_KEYS = ("access", "audited_status")


def audit_table(metadata: MetaData) -> Table:
    return Table(
        "audit",
        metadata,
        Column("id", BigInteger, Identity(always=True), primary_key=True),
        Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("subject", Text, nullable=False),
        Column("roles", ARRAY(Text), nullable=False),
        Column("district", Text),
        Column("action", Text),
        Column("resource_type", Text),
        Column("resource_id", Text),
        Column("method", Text, nullable=False),
        Column("route", Text, nullable=False),
        Column("status", Integer, nullable=False),
        # allowed (< 400), denied (by the access policy: 403, or 404 out of scope), refused
        # (another 4xx), failed (5xx).
        Column("outcome", Text, nullable=False),
        Index("ix_audit_resource", "resource_type", "resource_id"),
        Index("ix_audit_subject_at", "subject", "at"),
        Index("ix_audit_at", "at"),
    )


def _outcome(status: int, access: Access) -> str:
    if access.denied:
        return "denied"
    if status < 400:
        return "allowed"
    return "refused" if status < 500 else "failed"


def _row(scope: Scope, access: Access, status: int) -> dict[str, Any]:
    route = scope.get("route")
    rule = access.rule
    return {
        "subject": access.principal.subject,
        "roles": sorted(access.principal.roles),
        "district": access.principal.district,
        "action": ":".join([rule.action.value, *access.acts]) if rule else None,
        "resource_type": rule.resource.value if rule else None,
        "resource_id": access.resource_id,
        "method": scope["method"],
        "route": getattr(route, "path_format", None) or "(unmatched)",
        "status": status,
        "outcome": _outcome(status, access),
    }


def _access(scope: Scope) -> Access | None:
    state = scope.get("state")
    access = state.get("access") if isinstance(state, dict) else None
    return access if isinstance(access, Access) else None


async def record_in_transaction(request: Request, session: AsyncSession) -> None:
    """The `before_commit` hook: the row of a request whose route returned normally."""
    access = _access(request.scope)
    if access is None:
        return
    status = getattr(request.scope.get("route"), "status_code", None) or 200
    table: Table = runtime(request.app).audit_table
    # Sent with the request's other deferred rows, in one statement (shared/kernel/writes.py).
    defer(session, table, _row(request.scope, access, status))
    request.state.audited_status = status


class AuditMiddleware:
    """Writes the row of every audited request that did not write it in its transaction, and
    holds the response until it is written. Pure ASGI so that it sees the final status."""

    def __init__(self, app: ASGIApp, table: Table) -> None:
        self.app = app
        self.table = table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        # A fresh state for this request: a server may hand every request the same lifespan
        # state dict, and one request's principal must never be audited for another.
        scope["state"] = {k: v for k, v in (scope.get("state") or {}).items() if k not in _KEYS}
        held: Message | None = None
        replaced = False

        async def send_audited(message: Message) -> None:
            nonlocal held, replaced
            if replaced:
                return
            if message["type"] == "http.response.start":
                held = message
                return
            if held is not None:
                start, held = held, None
                refusal = await self._write(scope, start["status"])
                if refusal is not None:
                    replaced = True
                    await refusal(scope, receive, send)
                    return
                await send(start)
            await send(message)

        try:
            await self.app(scope, receive, send_audited)
        except Exception:
            if held is None:
                await self._write(scope, 500)
            raise

    async def _write(self, scope: Scope, status: int) -> Response | None:
        """Writes the row unless the transaction did; a response to send instead, or None."""
        access = _access(scope)
        if access is None:
            return None
        refusal: Response | None = None
        if 200 <= status < 300 and not access.unrestricted and not access.scoped:
            # The route answered rows to a scoped caller without applying the scope: fail closed.
            log.error("route answered without applying the row scope", extra={"method": scope["method"]})
            status = 500
            refusal = problem_response(500, "internal", "Internal error")
        state: dict[str, Any] = scope["state"]
        if state.get("audited_status") == status:
            return refusal
        sessionmaker: async_sessionmaker[AsyncSession] = runtime(scope["app"]).sessionmaker
        try:
            async with sessionmaker() as session, session.begin():
                await session.execute(insert(self.table).values(**_row(scope, access, status)))
        except Exception as exc:
            log.error("audit row could not be written; answer withheld", extra={"error": type(exc).__name__})
            return problem_response(
                503,
                "audit-unavailable",
                "Service unavailable",
                "The access could not be recorded in the audit trail, so it is not answered. Retry later.",
            )
        return refusal


# --- migration ---------------------------------------------------------------------------------
# Every service's migration 0002 calls these, so the four audit tables are the same by
# construction. Frozen like a migration: a later change to the audit table is a new function
# called from a new migration, never an edit here.


def create_audit_trail_v1() -> None:
    import sqlalchemy as sa
    from alembic import op

    op.create_table(
        "audit",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("roles", ARRAY(sa.Text()), nullable=False),
        sa.Column("district", sa.Text(), nullable=True),
        sa.Column("action", sa.Text(), nullable=True),
        sa.Column("resource_type", sa.Text(), nullable=True),
        sa.Column("resource_id", sa.Text(), nullable=True),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("route", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit")),
    )
    op.create_index("ix_audit_at", "audit", ["at"], unique=False)
    op.create_index("ix_audit_resource", "audit", ["resource_type", "resource_id"], unique=False)
    op.create_index("ix_audit_subject_at", "audit", ["subject", "at"], unique=False)
    # Append-only in the database too: whatever the application does, a row once written can
    # be neither changed nor removed (TRUNCATE is left to the table owner; production grants the
    # application role INSERT and SELECT only).
    op.execute(
        """
        CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the audit trail is append-only: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit "
        "FOR EACH ROW EXECUTE FUNCTION audit_append_only()"
    )


def drop_audit_trail_v1() -> None:
    from alembic import op

    op.execute("DROP TRIGGER audit_append_only ON audit")
    op.execute("DROP FUNCTION audit_append_only()")
    op.drop_index("ix_audit_subject_at", table_name="audit")
    op.drop_index("ix_audit_resource", table_name="audit")
    op.drop_index("ix_audit_at", table_name="audit")
    op.drop_table("audit")


# --- querying and exporting -------------------------------------------------------------------


class AuditEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    subject: str
    roles: list[str]
    district: str | None
    action: str | None
    resource_type: str | None
    resource_id: str | None
    method: str
    route: str
    status: int
    outcome: str


class AuditPage(BaseModel):
    items: list[AuditEntry]
    total: int
    limit: int
    offset: int


CSV_COLUMNS = list(AuditEntry.model_fields)


def audit_router(table: Table) -> APIRouter:
    router = v1_router()

    @router.get(
        "/audit",
        response_model=AuditPage,
        tags=["audit"],
        summary="The audit trail: who read or wrote which record, when, and the outcome",
        responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
        description=(
            "Oldest first. Filters: `subject` (the token's subject), `resource_type`, `resource_id`, "
            "`from` and `to` (timestamps, both included). `Accept: text/csv` exports the matching rows "
            "(`limit` and `offset` apply) as CSV with a header row."
        ),
    )
    async def list_audit(
        request: Request,
        session: SessionDep,
        subject: Annotated[ShortText | None, Query()] = None,
        resource_type: Annotated[NameText | None, Query()] = None,
        resource_id: Annotated[NameText | None, Query()] = None,
        from_: Annotated[Instant | None, Query(alias="from")] = None,
        to: Annotated[Instant | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
        offset: Offset = 0,
    ) -> Any:
        stmt = select(table)
        if subject is not None:
            stmt = stmt.where(table.c.subject == subject)
        if resource_type is not None:
            stmt = stmt.where(table.c.resource_type == resource_type)
        if resource_id is not None:
            stmt = stmt.where(table.c.resource_id == resource_id)
        if from_ is not None:
            stmt = stmt.where(table.c.at >= from_)
        if to is not None:
            stmt = stmt.where(table.c.at <= to)
        total = int(await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
        rows = (await session.execute(stmt.order_by(table.c.id).limit(limit).offset(offset))).mappings().all()
        items = [AuditEntry.model_validate(dict(r)) for r in rows]
        if "text/csv" in request.headers.get("accept", ""):
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(CSV_COLUMNS)
            for item in items:
                values = item.model_dump(mode="json")
                values["roles"] = " ".join(values["roles"])
                writer.writerow(["" if values[c] is None else values[c] for c in CSV_COLUMNS])
            return Response(
                out.getvalue(),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": 'attachment; filename="audit.csv"', "X-Total-Count": str(total)},
            )
        return AuditPage(items=items, total=total, limit=limit, offset=offset)

    return router
