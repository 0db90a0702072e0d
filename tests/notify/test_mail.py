"""Notify's mail against a real SMTP server (aiosmtpd, started by each test): who is told of each
transition, the exact words, the digest, an SMTP outage, two instances, and the directory API."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from services.notify.app import evaluate
from services.notify.mail import make_digests, send_mail
from shared.local.embedded import free_port
from shared.local.mailsink import MailSink
from shared.web.runtime import runtime
from tests.fixtures.notify import Bus, Case, consumed
from tests.fixtures.support import eventually

DAY0 = date(2025, 9, 1)
WEB = "https://obruten.stad.example"
CASEWORKER = "cw-farsta-17"
CW_MAIL = "handlaggare17@farsta.stad.example"
BOXES = {
    "district": "larm@farsta.stad.example",
    "district_manager": "chef@farsta.stad.example",
    "central_office": "larm@socialforvaltningen.stad.example",
}
PNR, LOCATION, SCHOOL_UNIT = "20130402-2384", "Storgatan 12, Gnesta", "12345678"


def day(n: int) -> date:
    return DAY0 + timedelta(days=n)


def mail_settings(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "notify_tick_interval_seconds": 3600,
        "notify_smtp_host": "127.0.0.1",
        "notify_smtp_port": port,
        "notify_smtp_security": "none",
        "notify_mail_poll_interval_seconds": 0.05,
        "notify_mail_backoff_initial_seconds": 0.05,
        "notify_mail_backoff_max_seconds": 0.2,
        "notify_mail_from": "Obruten <obruten@stad.example>",
        "web_url": WEB,
        # school_gap alone (a jourhem has no school-plan rule): the examination rules would mail too.
        "notify_rules": {"health_exam_missing": {"enabled": False}, "dental_exam_missing": {"enabled": False}},
        **extra,
    }


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[MailSink]:
    with MailSink(tmp_path / "mail") as s:
        yield s


def plain(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")  # SMTP carries CRLF line ends


async def mails(sink: MailSink, count: int, timeout: float = 15) -> list[EmailMessage]:
    async def enough() -> list[EmailMessage]:
        got = sink.messages()
        return got if len(got) >= count else []

    got = await eventually(enough, timeout=timeout)
    await asyncio.sleep(0.3)  # nothing more is on its way
    assert len(sink.messages()) == count, [m["Subject"] for m in sink.messages()]
    return got


@contextlib.asynccontextmanager
async def directory(notify: Any) -> AsyncIterator[None]:
    resp = await notify.put(f"/v1/people/{CASEWORKER}", json={"email": CW_MAIL, "delivery": "immediate"})
    assert resp.status_code == 200, resp.text
    for level, address in BOXES.items():
        resp = await notify.post("/v1/mail-recipients", json={"district": "Farsta", "level": level, "address": address})
        assert resp.status_code == 201, resp.text
    other = {"district": "Bromma", "level": "district", "address": "larm@bromma.stad.example"}
    assert (await notify.post("/v1/mail-recipients", json=other)).status_code == 201
    yield


def expected_alert_text(alert_id: str, level: str, counted: int) -> str:
    return (
        f"Ett larm har nått nivån {level}.\n\n"
        "Regel: Skolgång saknas\n"
        "Stadsdel: Farsta\n"
        f"Räknade dagar: {counted} (kalenderdagar: {counted})\n"
        "Tidsgräns: 2025-09-09\n"
        f"Nivå: {level}\n"
        f"Se larmet: {WEB}/alerts/{alert_id}\n\n"
        "Detta är ett automatiskt meddelande från Obruten. Det innehåller inga uppgifter om barnet; "
        "logga in via länken för att se ärendet.\n"
    )


async def test_a_school_gap_alert_climbing_every_level_and_resolving(service_client, settings, clock, sink, tokens):
    case = Case(DAY0, caseworker=CASEWORKER)
    async with (
        Bus(settings) as bus,
        service_client("notify", settings_override=mail_settings(sink.port)) as notify,
        directory(notify),
    ):
        await bus.placement(case)
        await consumed(1, notify)
        clock.set_today(day(5))
        await evaluate(notify.app)
        [pre] = await mails(sink, 1)
        assert pre["To"] == CW_MAIL and pre["Subject"] == "[Obruten] Förvarning: Skolgång saknas – Farsta"
        assert "Tidsgränsen närmar sig: regeln bryts 2025-09-09 om inget händer." in plain(pre)

        clock.set_today(day(8))
        await evaluate(notify.app)
        opened = (await mails(sink, 3))[1:]
        alert_id = (await notify.get("/v1/alerts")).json()["items"][0]["id"]
        assert sorted(m["To"] for m in opened) == sorted([BOXES["district"], CW_MAIL])
        for m in opened:
            assert m["Subject"] == "[Obruten] Larm: Skolgång saknas – Farsta (nivå: stadsdelsförvaltningen)"
            assert plain(m) == expected_alert_text(alert_id, "stadsdelsförvaltningen", 8)
            assert m["Auto-Submitted"] == "auto-generated" and m["From"] == "Obruten <obruten@stad.example>"
            html = m.get_body(preferencelist=("html",))
            assert html is not None and f'href="{WEB}/alerts/{alert_id}"' in str(html.get_content())

        # An acknowledgement with personal data planted in its note tells no one and reaches no mail.
        note = {"note": f"Ringt skolan om {PNR}, bor på {LOCATION}"}
        cw = tokens.headers("caseworker", district="Farsta", subject=CASEWORKER)
        assert (await notify.post(f"/v1/alerts/{alert_id}/acknowledge", json=note, headers=cw)).status_code == 200
        clock.set_today(day(15))
        await evaluate(notify.app)
        [manager] = (await mails(sink, 4))[3:]
        assert manager["To"] == BOXES["district_manager"]
        assert manager["Subject"] == "[Obruten] Larm: Skolgång saknas – Farsta (nivå: stadsdelens chef)"
        assert plain(manager) == expected_alert_text(alert_id, "stadsdelens chef", 15)
        clock.set_today(day(38))
        await evaluate(notify.app)
        [central] = (await mails(sink, 5))[4:]
        assert central["To"] == BOXES["central_office"]
        assert plain(central) == expected_alert_text(alert_id, "socialförvaltningen", 38)

        clock.set_today(day(40))
        await bus.school_started(case, day(40))  # carries the school unit code
        resolved = (await mails(sink, 9))[5:]
        deliveries = (await notify.get("/v1/mail-deliveries", params={"alert_id": alert_id})).json()
    assert sorted(m["To"] for m in resolved) == sorted([CW_MAIL, *BOXES.values()]), "those told, no one else"
    for m in resolved:
        assert m["Subject"] == "[Obruten] Åtgärdat: Skolgång saknas – Farsta"
        assert "Orsak: skolgången har börjat\n" in plain(m) and "Räknade dagar: 40 (kalenderdagar: 40)" in plain(m)
    everything = [p.read_bytes() for p in sink.files()]
    assert len(everything) == 9
    for raw in everything:
        text = raw.decode()
        for planted in (PNR, PNR.replace("-", ""), LOCATION, "Storgatan", SCHOOL_UNIT, str(case.child_id)):
            assert planted not in text
        assert "bromma" not in text.lower()
    ids = [m["Message-ID"] for m in sink.messages()]
    assert len(set(ids)) == 9 and all(re.fullmatch(r"<[0-9a-f]{40}@obruten\.notify>", i) for i in ids)
    assert deliveries["total"] == 9 and {d["status"] for d in deliveries["items"]} == {"sent"}


async def test_the_digest_lists_what_happened_once_a_day_and_nothing_when_nothing_did(
    service_client, settings, clock, sink
):
    case = Case(DAY0, caseworker=CASEWORKER)
    async with (
        Bus(settings) as bus,
        service_client("notify", settings_override=mail_settings(sink.port)) as notify,
    ):
        resp = await notify.put(f"/v1/people/{CASEWORKER}", json={"email": CW_MAIL, "delivery": "digest"})
        assert resp.json()["delivery"] == "digest"
        await bus.placement(case)
        await consumed(1, notify)
        clock.set_today(day(5))
        await evaluate(notify.app)
        clock.set_today(day(8))
        await evaluate(notify.app)
        held = (await notify.get("/v1/mail-deliveries", params={"status": "held"})).json()
        assert held["total"] == 2  # the pre-warning and the alert, waiting for the digest
        clock.set_today(day(9), hour=6)
        assert await make_digests(notify.app) == 0, "before 07:00"
        await send_mail(notify.app)
        assert sink.messages() == []
        clock.set_today(day(9), hour=7)
        assert await make_digests(notify.app) == 1
        assert await make_digests(notify.app) == 0, "once a day"
        [digest] = await mails(sink, 1)
        clock.set_today(day(10), hour=7)
        assert await make_digests(notify.app) == 0, "nothing happened: no mail"
        await asyncio.sleep(0.3)
        assert len(sink.messages()) == 1
    assert digest["To"] == CW_MAIL and digest["Subject"] == "[Obruten] Sammanställning 2025-09-10: 2 händelser"
    text = plain(digest)
    assert text.startswith("Det här har hänt sedan förra sammanställningen (2 st):\n\n1. Förvarning: Skolgång saknas")
    assert "2. Larm: Skolgång saknas – Farsta (nivå: stadsdelsförvaltningen)" in text
    assert digest["Auto-Submitted"] == "auto-generated"


async def test_mail_waits_while_the_smtp_server_is_down_and_goes_once_when_it_returns(
    service_client, settings, clock, tmp_path
):
    port = free_port()
    case = Case(DAY0, caseworker=CASEWORKER)
    async with (
        Bus(settings) as bus,
        service_client("notify", settings_override=mail_settings(port)) as notify,
    ):
        await notify.put(f"/v1/people/{CASEWORKER}", json={"email": CW_MAIL})
        await bus.placement(case)
        await consumed(1, notify)
        clock.set_today(day(8))
        await evaluate(notify.app)  # the alert does not wait for the mail
        assert (await notify.get("/v1/alerts")).json()["items"][0]["status"] == "open"

        async def failing() -> bool:
            items = (await notify.get("/v1/mail-deliveries")).json()["items"]
            return bool(items) and items[0]["attempts"] >= 2 and items[0]["status"] == "pending"

        await eventually(failing, timeout=10)
        with MailSink(tmp_path / "mail", port=port) as sink:
            [msg] = await mails(sink, 1)
            await asyncio.sleep(0.5)
            assert len(sink.messages()) == 1
            [row] = (await notify.get("/v1/mail-deliveries")).json()["items"]
            metrics = (await notify.get("/metrics")).text
    assert msg["To"] == CW_MAIL and row["status"] == "sent" and row["attempts"] >= 3
    assert row["last_error"] is None
    assert msg["Message-ID"] == row["message_id"]
    assert "obruten_mail_sent_total 1.0" in metrics and "obruten_mail_failed_attempts_total" in metrics


async def test_two_notify_instances_send_each_mail_once_also_after_a_restart(service_client, settings, clock, sink):
    cases = [Case(DAY0, caseworker=f"cw-{n}") for n in range(5)]
    override = mail_settings(sink.port)
    async with Bus(settings) as bus:
        async with (
            service_client("notify", settings_override=override) as one,
            service_client("notify", settings_override=override) as two,
        ):
            for n, case in enumerate(cases):
                await one.put(f"/v1/people/cw-{n}", json={"email": f"cw{n}@farsta.stad.example"})
                await bus.placement(case)
            await one.post(
                "/v1/mail-recipients", json={"district": "Farsta", "level": "district", "address": BOXES["district"]}
            )
            await consumed(len(cases), one, two)
            clock.set_today(day(8))
            await asyncio.gather(*(evaluate(c.app) for c in (one, two, one, two)))
            got = await mails(sink, 2 * len(cases))
        # A restart, and the same events delivered again: nothing is told twice.
        async with service_client("notify", settings_override=override) as again:
            for case in cases:
                case.version -= 1
                await bus.placement(case)
            await evaluate(again.app)
            await asyncio.sleep(1.0)
    assert len(sink.messages()) == len(got) == 10
    assert len({m["Message-ID"] for m in got}) == 10
    assert sorted(m["To"] for m in got).count(BOXES["district"]) == 5


async def test_the_directory_api(service_client, tokens):
    async with service_client("notify", settings_override={"notify_tick_interval_seconds": 3600}) as notify:
        me = tokens.headers("caseworker", district="Farsta", subject="cw-1")
        other = tokens.headers("caseworker", district="Farsta", subject="cw-2")
        own = await notify.put("/v1/people/cw-1", json={"email": "Cw1@Farsta.Stad.Example"}, headers=me)
        assert own.status_code == 200 and own.json()["delivery"] == "immediate"
        assert own.json()["email"].endswith("@farsta.stad.example")
        assert (await notify.get("/v1/people/cw-1", headers=me)).status_code == 200
        assert (await notify.get("/v1/people/cw-1", headers=other)).status_code == 403
        assert (await notify.put("/v1/people/cw-1", json={"email": "x@y.example"}, headers=other)).status_code == 403
        assert (
            await notify.put("/v1/people/cw-1", json={"email": "a@b.example", "delivery": "digest"})
        ).status_code == 200
        # A sign-in refreshing the address alone keeps the choice made.
        again = await notify.put("/v1/people/cw-1", json={"email": "cw1.new@farsta.stad.example"}, headers=me)
        assert (again.json()["email"], again.json()["delivery"]) == ("cw1.new@farsta.stad.example", "digest")
        assert (await notify.get("/v1/people", headers=me)).status_code == 403
        assert (await notify.get("/v1/people")).json()["total"] == 1
        for body in (
            {"email": "not an address"},
            {"email": "a@b.example", "delivery": "weekly"},
            {"email": "a\x00@b.se"},
        ):
            assert (await notify.put("/v1/people/cw-1", json=body)).status_code == 422
        # A control character or a NUL in the path is 404 and audited, as on every route (shared/web).
        for bad in ("a%07b", "a%00b"):
            assert (await notify.put(f"/v1/people/{bad}", json={"email": "a@b.example"})).status_code == 404
        good = {"district": "Farsta", "level": "district_manager", "address": "chef@farsta.stad.example"}
        created = await notify.post("/v1/mail-recipients", json=good)
        assert created.status_code == 201, created.text
        assert (await notify.post("/v1/mail-recipients", json=good)).status_code == 409
        for bad, field in (
            ({**good, "district": "Atlantis"}, "body.district"),
            ({**good, "level": "mayor"}, "body.level"),
        ):
            resp = await notify.post("/v1/mail-recipients", json=bad)
            assert resp.status_code == 422 and resp.json()["field"] == field
        assert (await notify.post("/v1/mail-recipients", json=good, headers=me)).status_code == 403
        assert (await notify.get("/v1/mail-deliveries", headers=me)).status_code == 403
        listed = (await notify.get("/v1/mail-recipients", params={"district": "Farsta"})).json()
        assert [r["address"] for r in listed] == ["chef@farsta.stad.example"]
        assert (await notify.delete(f"/v1/mail-recipients/{created.json()['id']}")).status_code == 204
        assert (await notify.get(f"/v1/mail-recipients/{created.json()['id']}")).status_code == 404
        audit = (await notify.get("/v1/audit", params={"limit": 100})).json()
    routes = {(row["method"], row["route"]) for row in audit["items"]}
    assert ("PUT", "/v1/people/{subject}") in routes and ("DELETE", "/v1/mail-recipients/{recipient_id}") in routes


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, as a city's own CA would issue one."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smtp.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp.pem", directory / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_mail_goes_over_tls_with_authentication(service_client, settings, clock, tmp_path, security):
    import ssl

    from aiosmtpd.smtp import AuthResult, LoginPassword

    cert, key = _certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    logins: list[str] = []

    def authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False)
        pair = (auth_data.login, auth_data.password)
        login, password = (v.decode() if isinstance(v, bytes) else str(v) for v in pair)
        ok = (login, password) == ("notify", "hemligt")
        if ok:
            logins.append(login)
        return AuthResult(success=ok)

    if security == "tls":
        # The whole connection is TLS; aiosmtpd does not see that as "TLS" for its AUTH rule.
        tls = {"ssl_context": server_tls, "auth_require_tls": False}
    else:
        tls = {"tls_context": server_tls, "require_starttls": True}
    case = Case(DAY0, caseworker=CASEWORKER)
    with MailSink(tmp_path / "mail", authenticator=authenticator, auth_required=True, **tls) as sink:
        override = mail_settings(
            sink.port,
            notify_smtp_security=security,
            notify_smtp_username="notify",
            notify_smtp_password=SecretStr("hemligt"),
            notify_smtp_ca_file=cert,
        )
        async with Bus(settings) as bus, service_client("notify", settings_override=override) as notify:
            await notify.put(f"/v1/people/{CASEWORKER}", json={"email": CW_MAIL})
            await bus.placement(case)
            await consumed(1, notify)
            clock.set_today(day(8))
            await evaluate(notify.app)
            [msg] = await mails(sink, 1)
    # The server speaks TLS only (implicit) or refuses mail before STARTTLS, and takes no mail unauthenticated.
    assert msg["To"] == CW_MAIL and logins == ["notify"]


async def test_a_resend_after_a_crash_carries_the_same_message_id(service_client, settings, clock, sink):
    """A sender that dies after the server accepted a mail and before marking it sent leaves its
    lease to run out and the mail is sent again: the same Message-ID, so it is recognisable."""
    from sqlalchemy import func, update

    from services.notify.mail.models import MailMessage

    case = Case(DAY0, caseworker=CASEWORKER)
    async with Bus(settings) as bus, service_client("notify", settings_override=mail_settings(sink.port)) as notify:
        await notify.put(f"/v1/people/{CASEWORKER}", json={"email": CW_MAIL})
        await bus.placement(case)
        await consumed(1, notify)
        clock.set_today(day(8))
        await evaluate(notify.app)
        [first] = await mails(sink, 1)
        async with runtime(notify.app).sessionmaker() as session, session.begin():
            # What a crash between the SMTP accept and the mark leaves, once its lease has run out:
            # the row still pending and due.
            await session.execute(
                update(MailMessage).values(status="pending", sent_at=None, next_attempt_at=func.now())
            )
        [_, second] = await mails(sink, 2)
    assert first["Message-ID"] == second["Message-ID"] and plain(first) == plain(second)
