"""The bare baseline of the HTTP-writes benchmark: one FastAPI endpoint that validates a body with
pydantic and inserts one row through SQLAlchemy (async, asyncpg), nothing else. No auth, no
outbox, no middleware.

    BARE_DATABASE_URL=postgresql+asyncpg://... python -m uvicorn bench.bare_app:app --port 8100
"""

from __future__ import annotations

import os
import uuid
from datetime import date

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import Boolean, Date, Text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class BarePlacement(Base):
    __tablename__ = "bare_placement"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    child_id: Mapped[uuid.UUID]
    district: Mapped[str] = mapped_column(Text)
    form: Mapped[str] = mapped_column(Text)
    legal_basis: Mapped[str] = mapped_column(Text)
    start_date: Mapped[date] = mapped_column(Date)
    school_change: Mapped[bool] = mapped_column(Boolean)


class Body(BaseModel):
    child_id: uuid.UUID
    district: str
    form: str
    legal_basis: str
    start_date: date
    school_change: bool


# The same pool as an Obruten service (database_pool_size 10, overflow 10).
engine = create_async_engine(os.environ.get("BARE_DATABASE_URL", "postgresql+asyncpg:///bare"), pool_size=10,
                             max_overflow=10)  # fmt: skip
sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
app = FastAPI()


@app.post("/bare", status_code=201)
async def create(body: Body) -> dict[str, str]:
    row = BarePlacement(id=uuid.uuid4(), **body.model_dump())
    async with sessionmaker() as session, session.begin():
        session.add(row)
    return {"id": str(row.id)}
