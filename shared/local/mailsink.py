"""A local SMTP server that keeps every message it receives as an `.eml` file: the embedded
default `obruten run` sends notify's mail to, and the real SMTP server the tests send to.

aiosmtpd runs it on a thread of its own (its Controller), so it serves while the caller's
event loop, or none, does anything else. Files are written whole under a temporary name and
renamed, so a reader never sees half a message.
"""

from __future__ import annotations

import email
import email.policy
import os
import threading
import time
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


class _Store:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        with self.lock:
            # Nanoseconds first: the names sort in the order of arrival, across restarts too.
            name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.eml"
        tmp = self.directory / f".{name}.tmp"
        tmp.write_bytes(content)
        os.replace(tmp, self.directory / name)
        return "250 Message accepted for delivery"


class MailSink:
    """`with MailSink(directory, port=0) as sink:` serves on 127.0.0.1:sink.port until the block ends."""

    def __init__(self, directory: Path, *, host: str = "127.0.0.1", port: int = 0, **controller: Any) -> None:
        # controller: aiosmtpd Controller options (tls_context and require_starttls for STARTTLS,
        # ssl_context for implicit TLS, authenticator and auth_required), for tests of those.
        self.options = controller
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port or _free_port(host)
        self.controller: Controller | None = None

    def start(self) -> MailSink:
        self.controller = Controller(_Store(self.directory), hostname=self.host, port=self.port, **self.options)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def files(self) -> list[Path]:
        return sorted(self.directory.glob("*.eml"))

    def messages(self) -> list[EmailMessage]:
        """Every message received, oldest first, parsed."""
        parsed = []
        for path in self.files():
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            parsed.append(msg)
        return parsed


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
