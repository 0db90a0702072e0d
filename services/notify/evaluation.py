"""Evaluation of the due index: which (placement, rule) pairs to assess (services/notify/facts.py
loads the facts they are assessed on), and the next due time of each.

Locking: every change to an alert of (placement, rule) happens while holding that pair's
alert_due row. A consumer batch's evaluation waits for it (FOR UPDATE, always in (placement,
rule) order); the tick skips rows another worker holds (SKIP LOCKED). The unique (rule,
placement) constraint is the backstop.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ARRAY, DateTime, Table, Text, bindparam, case, func, literal, null, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.notify.alerts.store import apply_assessment, hand_over
from services.notify.context import Context
from services.notify.facts import children_of_param, load_facts
from services.notify.mail import queue as mail_queue
from services.notify.models import Alert, AlertDue, PlacementArrival, placement_view
from services.notify.rules import assess as r
from services.notify.schedule import note_due
from shared.bus.batch import any_param, unnest
from shared.contracts.alerts import RULE_NAMES


async def evaluate_placements(
    session: AsyncSession, ctx: Context, placement_ids: Iterable[uuid.UUID], *, seen_at: datetime | None = None
) -> None:
    """Re-assess every rule of these placements now, waiting for their due rows if a tick holds
    them. Rows are created and locked in (placement, rule) order, the same in every replica, so
    two consumers touching the same placements wait for each other instead of deadlocking.

    Every placement of the children concerned is re-assessed with them: a placement arriving,
    ending or corrected can change the child's run, and so which placement holds its alerts.

    `seen_at` (the consumer): also note that notify learnt of these placements (and of their end)
    then, what the settle period counts from (services/notify/facts.py), in the same statement as
    the due rows."""
    params: dict[str, Any] = {"given": sorted(set(placement_ids))}
    if seen_at is None:
        created = (await session.execute(_CREATE_DUE, params)).one()
    else:
        created = (await session.execute(_CREATE_DUE_NOTING_ARRIVALS, {**params, "seen_at": seen_at})).one()
    new = set(zip(created.placement_ids or (), created.rules or (), strict=True))
    pairs = [(row.placement_id, row.rule) for row in await session.execute(_LOCK_DUE, params)]
    if pairs:
        await _evaluate_pairs(session, ctx, pairs, new=new.issuperset(pairs))


def _create_due(*, noting_arrivals: bool) -> Any:
    """The due rows of every placement of the children of `given` that is on file, created when
    missing (one statement, not a look-up and an insert): facts that arrived before their
    placement wait for it, keyed by placement_id. Answers the pairs it created, as two arrays
    (one row, not one per pair).

    `noting_arrivals`: also note when notify first learnt of each placement of `given` on file,
    and of its end, at `seen_at` (notify's clock). Independent of the due rows (both read the
    placements as the statement starts), so one round trip holds both."""
    pv = placement_view.c
    due = cast(Table, AlertDue.__table__)  # the table: an ORM insert given parameters is a bulk insert
    rules = select(func.unnest(literal(list(RULE_NAMES), ARRAY(Text))).column_valued("rule")).subquery()
    created = (
        pg_insert(due)
        .from_select(
            ["placement_id", "rule"],
            select(pv.placement_id, rules.c.rule)
            .select_from(placement_view.join(rules, true()))
            .where(pv.placement_id.in_(children_of_param("given")))
            .order_by(pv.placement_id, rules.c.rule),
        )
        .on_conflict_do_nothing()
        .returning(due.c.placement_id, due.c.rule)
        .cte("created")
    )
    stmt = select(
        func.array_agg(created.c.placement_id).label("placement_ids"), func.array_agg(created.c.rule).label("rules")
    )
    if not noting_arrivals:
        return stmt
    arrivals_table = cast(Table, PlacementArrival.__table__)
    seen = bindparam("seen_at", type_=DateTime(timezone=True))
    ended = case((pv.end_date.is_not(None), seen), else_=null())
    arrivals = pg_insert(arrivals_table).from_select(
        ["placement_id", "first_seen_at", "ended_seen_at"],
        select(pv.placement_id, seen, ended).where(any_param(pv.placement_id, "given")),
    )
    arrivals = arrivals.on_conflict_do_update(
        index_elements=[arrivals_table.c.placement_id],
        set_={"ended_seen_at": func.coalesce(arrivals_table.c.ended_seen_at, arrivals.excluded.ended_seen_at)},
    )
    return stmt.add_cte(arrivals.cte("arrivals"))


def _lock_due() -> Any:
    """The due rows of every placement of the children of `given`, locked in (placement, rule) order:
    a statement of its own, after `_create_due`, so that it sees (and locks) the rows just created
    and any another transaction committed meanwhile."""
    return (
        select(AlertDue.placement_id, AlertDue.rule)
        .where(AlertDue.placement_id.in_(children_of_param("given")))
        .order_by(AlertDue.placement_id, AlertDue.rule)
        .with_for_update()
    )


# Built once: the same statement objects are cache hits for SQLAlchemy's compiler.
_CREATE_DUE = _create_due(noting_arrivals=False)
_CREATE_DUE_NOTING_ARRIVALS = _create_due(noting_arrivals=True)
_LOCK_DUE = _lock_due()


async def evaluate_due(
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
    *,
    batch_size: int = 500,
    after_commit: Callable[[AsyncSession], Any] | None = None,
) -> int:
    """One evaluation tick: assess the (placement, rule) pairs due now, in batches, each batch
    one transaction. Reads only due rows, through the partial index on due_at. Returns how many
    pairs were evaluated."""
    now = ctx.clock.now()
    total = 0
    while True:
        async with sessionmaker() as session, session.begin():
            due = (
                await session.execute(
                    select(AlertDue.placement_id, AlertDue.rule)
                    .where(AlertDue.due_at.is_not(None), AlertDue.due_at <= now)
                    .order_by(AlertDue.due_at)
                    .limit(batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if due:
                await _evaluate_pairs(session, ctx, [(row.placement_id, row.rule) for row in due])
        if due and after_commit is not None:
            after_commit(session)
        total += len(due)
        # Every evaluated row moves to a later day, so a short batch means nothing more is due.
        if len(due) < batch_size:
            return total


async def _evaluate_pairs(
    session: AsyncSession, ctx: Context, pairs: Sequence[tuple[uuid.UUID, str]], *, new: bool = False
) -> None:
    """Assess locked (placement, rule) pairs, apply the transitions and set their next due time.

    Only the head of a child's run is assessed, on the facts of the whole run; an active alert on
    an earlier placement of the run passes to the head first (the alert follows the child).

    `new`: every pair's due row was created by this transaction (placements notify just learnt
    of). No alert of theirs can exist: an alert is only written, or passed on, by a holder of its
    pair's due row, and a due row exists before anything holds it. So none is read or locked."""
    loaded = await load_facts(session, ctx, (pid for pid, _ in pairs))
    session.info[mail_queue.RULES_KEY] = ctx.rules  # mail: the ladder's step names
    alerts: dict[tuple[uuid.UUID, str], Alert] = {}
    if not new:
        for alert in await session.scalars(_LOCK_ALERTS, {"ids": list(loaded.facts)}):
            alerts[(alert.placement_id, alert.rule)] = alert
    now, today = ctx.clock.now(), ctx.today()
    locked = set(pairs)
    for pid, rule in pairs:
        head = loaded.head_of.get(pid)
        if head is not None and head != pid and (head, rule) in locked:
            await hand_over(session, ctx, alerts, pid, head, rule, now, today)
    updates: list[tuple[uuid.UUID, str, datetime | None]] = []
    # History rows and alert changes go out in one batched flush after the loop, not one per alert.
    with session.no_autoflush:
        for pid, rule in pairs:
            due_at: datetime | None = None
            if loaded.head_of.get(pid) == pid and rule in RULE_NAMES:
                f = loaded.facts[pid]
                assessment = r.assess(rule, ctx.rules, f, today)
                current = alerts.get((pid, rule))
                due_on, held = await apply_assessment(
                    session, ctx, assessment, f, current, now, today, loaded.hold(pid, now)
                )
                times = [t for t in (ctx.midnight(due_on) if due_on else None, held) if t is not None]
                due_at = min(times) if times else None
            updates.append((pid, rule, due_at))
    await session.flush()
    await write_due_times(session, updates, now)
    # Wakes the evaluation loop (and other replicas') when a due time is earlier than it sleeps until.
    await note_due(session, ctx.schedule, (due_at for _, _, due_at in updates))


async def write_due_times(
    session: AsyncSession, rows: Sequence[tuple[uuid.UUID, str, datetime | None]], evaluated_at: datetime
) -> None:
    """Every change of a due time goes through here: the (placement, rule) pairs just assessed,
    each with its next due time (None: nothing changes with time alone), in one statement."""
    if rows:
        placement_ids, rules, due_at = (list(column) for column in zip(*rows, strict=True))
        params = {"new_placement_id": placement_ids, "new_rule": rules, "new_due_at": due_at, "now": evaluated_at}
        await session.execute(_SET_DUE, params)


def _set_due() -> Any:
    table = cast(Table, AlertDue.__table__)
    rows = unnest(table, ["placement_id", "rule", "due_at"], prefix="new_").subquery("new")
    return (
        update(table)
        .where(table.c.placement_id == rows.c.placement_id, table.c.rule == rows.c.rule)
        .values(due_at=rows.c.due_at, evaluated_at=bindparam("now", type_=table.c.evaluated_at.type))
    )


# Built once: the same statement object is a cache hit for SQLAlchemy's compiler. Core, not ORM:
# an ORM update given rows is a bulk update by primary key, one execution per row.
_SET_DUE = _set_due()
_LOCK_ALERTS = select(Alert).where(any_param(Alert.placement_id, "ids")).order_by(Alert.id).with_for_update()
