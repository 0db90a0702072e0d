"""Webhook signatures by the Standard Webhooks specification (https://www.standardwebhooks.com).

Every delivery carries `webhook-id` (the delivery's id: the same on every retry, for
de-duplication), `webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature`
(`v1,` + base64 HMAC-SHA256 over `id.timestamp.body`), signed with the `standardwebhooks`
package itself. A receiver verifies with `standardwebhooks.Webhook(secret).verify(body, headers)`,
which also refuses a timestamp more than five minutes off: a captured delivery cannot be
replayed later.

Secrets are kept in the `whsec_<base64 key>` form. While a rotated-out secret is still within
its overlap, each delivery is signed with both (space-separated signatures, as the
specification allows), so a receiver can switch keys at its own pace.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from datetime import UTC, datetime

from standardwebhooks import Webhook

PREFIX = "whsec_"
MIN_KEY_BYTES, MAX_KEY_BYTES = 24, 64


def generate_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def normalise_secret(secret: str) -> str:
    """The stored (`whsec_`) form of a secret given at registration.

    `whsec_<base64>`: the key is the decoded bytes (24 to 64 of them). Anything else (at least
    16 characters, checked by the schema) is taken as the key's raw UTF-8 bytes, as earlier
    subscriptions were: such a receiver verifies with `Webhook(secret.encode())`."""
    if secret.startswith(PREFIX):
        try:
            key = base64.b64decode(secret.removeprefix(PREFIX), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a whsec_ secret must be base64 after the prefix") from None
        if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
            raise ValueError(f"a whsec_ secret must hold {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes")
        return secret
    return PREFIX + base64.b64encode(secret.encode()).decode()


def headers(delivery_id: str, body: str, keys: list[str], now: datetime | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt, signed with every key given."""
    at = (now or datetime.now(UTC)).astimezone(UTC)
    signatures = " ".join(Webhook(key).sign(msg_id=delivery_id, timestamp=at, data=body) for key in keys)
    return {
        "webhook-id": delivery_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
    }
