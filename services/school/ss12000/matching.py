"""Recognising placed children among a source's pupils, locally.

Before each sync the intake asks the placement service (as the service account) for the keyed
hashes of the children with an open placement (GET /v1/pupil-keys). It hashes each synced
`civicNo` with the same key and looks it up; a person who does not match is dropped there and
then. The hash list lives in this object for one sync and is never stored or logged: with the
key, a hash gives the personnummer back (shared/kernel/pupil_key.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

import httpx
from pydantic import BaseModel, ValidationError

from services.school.ss12000.client import SourceError
from shared.kernel.pupil_key import normalise_civic_no, pupil_key
from shared.kernel.settings import Settings


@dataclass(frozen=True)
class Awaiting:
    """An open placement of a child, without anything that identifies the child."""

    placement_id: uuid.UUID
    child_id: uuid.UUID
    start_date: date
    end_date: date | None


class _KeyedPlacement(BaseModel):
    placement_id: uuid.UUID
    child_id: uuid.UUID
    start_date: date
    end_date: date | None
    key: str


class _PupilKeys(BaseModel):
    items: list[_KeyedPlacement]


class Matcher:
    def __init__(self, secret: bytes, keyed: list[_KeyedPlacement]) -> None:
        self._secret = secret
        self._by_key: dict[str, list[Awaiting]] = {}
        for k in keyed:
            self._by_key.setdefault(k.key, []).append(Awaiting(k.placement_id, k.child_id, k.start_date, k.end_date))

    def __len__(self) -> int:
        return len(self._by_key)

    def match(self, civic_no: str | None) -> list[Awaiting]:
        """The open placements of the child with this civicNo; empty for anyone else."""
        number = normalise_civic_no(civic_no)
        if number is None:
            return []
        return self._by_key.get(pupil_key(self._secret, number), [])


async def load_matcher(settings: Settings, http: httpx.AsyncClient) -> Matcher:
    """The current hash list from the placement service; SourceError when it cannot be had
    (the sync then fails as a whole and its position stays)."""
    if settings.ss12000_match_key is None:
        raise SourceError("match-key-unset")
    try:
        resp = await http.get("/v1/pupil-keys")
    except httpx.TransportError:
        raise SourceError("placement-unavailable") from None
    if resp.status_code != 200:
        raise SourceError(f"placement-http-{resp.status_code}")
    try:
        keys = _PupilKeys.model_validate_json(resp.content)
    except ValidationError:
        # Not re-raised: pydantic's message would quote the input, hashes and all.
        raise SourceError("placement-malformed") from None
    return Matcher(settings.ss12000_match_key.get_secret_value().encode(), keys.items)


def placement_http(settings: Settings) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {settings.service_token}"} if settings.service_token else {}
    return httpx.AsyncClient(base_url=settings.placement_base_url(), headers=headers, timeout=httpx.Timeout(10.0))
