"""Issue 14, finding 2 on the placement service: a placement's start corrected to after the
child's school start is refused with 409 naming the field; the placement service knows the
school start from `obruten.school`. Today is 2025-09-01."""

from __future__ import annotations

from datetime import date

from tests.fixtures.factories import child_body, placement_body
from tests.fixtures.support import eventually
from tests.placement.test_placement import assert_problem, count_rows
from tests.school.test_school import count_rows as school_rows


async def test_a_placement_start_after_its_school_start_is_409(service_client, settings):
    """Placed 2025-08-10, in school from 2025-08-20. Corrected to 2025-08-15: accepted (the school
    service recomputes its days to 5). Corrected to 2025-08-23: 409, body.start_date."""
    async with service_client("placement") as placement, service_client("school") as school:
        child = (await placement.post("/v1/children", json=child_body(1))).json()
        created = await placement.post("/v1/placements", json=placement_body(child["id"], start=date(2025, 8, 10)))
        assert created.status_code == 201, created.text
        placement_id = created.json()["id"]

        async def known() -> bool:
            return await school_rows(settings, "placement_view") == 1

        await eventually(known, timeout=30)
        start = await school.post(
            "/v1/school-starts",
            json={"placement_id": placement_id, "start_date": "2025-08-20", "provision": "home_school"},
        )
        assert start.status_code == 201, start.text

        async def seen() -> bool:
            return await count_rows(settings, "school_start_seen") == 1

        await eventually(seen, timeout=30)
        earlier = await placement.patch(f"/v1/placements/{placement_id}", json={"start_date": "2025-08-15"})
        assert earlier.status_code == 200, earlier.text
        later = await placement.patch(f"/v1/placements/{placement_id}", json={"start_date": "2025-08-23"})
        body = assert_problem(later, 409, "body.start_date")
        assert "2025-08-20" in body["detail"]
        assert (await placement.get(f"/v1/placements/{placement_id}")).json()["start_date"] == "2025-08-15"

        async def recomputed() -> bool:
            got = (await school.get(f"/v1/school-starts/{start.json()['id']}")).json()
            return bool(got["days_to_school_start"] == 5)

        await eventually(recomputed, timeout=30)
        # On the very day of the school start it is still consistent (0 days).
        same_day = await placement.patch(f"/v1/placements/{placement_id}", json={"start_date": "2025-08-20"})
        assert same_day.status_code == 200, same_day.text
