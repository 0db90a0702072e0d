"""Where a webhook may point, and the one way notify connects to it.

A subscription must not turn notify into a way into the city's own network or the machine it
runs on. So a destination is checked twice, at registration and again before every attempt:

* the URL: http(s), a host, a port that is a number 1-65535, no credentials;
* the allow-list (`OBRUTEN_NOTIFY_WEBHOOK_ALLOWED_HOSTS`), when one is set;
* the host is resolved (a name through the system resolver, /etc/hosts included; an address in
  any spelling the resolver accepts: `2130706433`, `0x7f000001`, `127.1`, `0`) and EVERY address it
  resolves to must be globally routable (`ipaddress.is_global`), including the IPv4 address inside
  an IPv4-mapped, 6to4 or NAT64 IPv6 address. A name that does not resolve is refused too (it may
  resolve to anything later). `OBRUTEN_NOTIFY_WEBHOOK_ALLOW_PRIVATE` (development, tests) lifts
  only the routability check.

The request then goes to the very address that was checked (`pinned_request`), with the URL's
host in the Host header and as the TLS server name (so the certificate is verified for the
name), so a name that resolves to a public address when checked and to 127.0.0.1 a moment later
(DNS rebinding) cannot reach inside.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from services.notify.settings import NotifySettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the addresses the host resolves to (strings as getaddrinfo answers them).
Resolver = Callable[[str, int], Awaitable[list[str]]]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class DestinationRefused(ValueError):
    """Why notify will not send to a URL; the message is safe to show (it holds no secret)."""


class Unresolvable(DestinationRefused):
    """The host did not resolve (now)."""


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str  # lower case, IDNA-encoded, no trailing dot; IPv6 without brackets
    port: int
    explicit_port: bool
    path_and_query: str


@dataclass(frozen=True)
class Checked:
    destination: Destination
    address: IPAddress  # the address the request goes to


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def parse(url: str) -> Destination:
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise DestinationRefused("must not contain control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise DestinationRefused("not a valid URL: the port must be a number from 1 to 65535") from None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise DestinationRefused("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise DestinationRefused("must not carry credentials; the secret signs the body instead")
    if port == 0:
        raise DestinationRefused("the port must be a number from 1 to 65535")
    host = parts.hostname.rstrip(".").lower()
    try:
        host = host.encode("idna").decode("ascii") if not _is_ip_literal(host) else host
    except UnicodeError:
        raise DestinationRefused("the host is not a valid name") from None
    if not host:
        raise DestinationRefused("must be an http:// or https:// URL with a host")
    path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
    return Destination(parts.scheme, host, port or _DEFAULT_PORTS[parts.scheme], port is not None, path)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def allow_listed(host: str, settings: NotifySettings) -> bool:
    allowed = [h.rstrip(".").lower() for h in settings.webhook_allowed_hosts]
    return any(host == h or (h.startswith(".") and host.endswith(h)) for h in allowed)


def not_global(address: IPAddress) -> bool:
    """True when the address (or an IPv4 address carried inside an IPv6 one) is not globally routable."""
    if isinstance(address, ipaddress.IPv6Address):
        inner: ipaddress.IPv4Address | None = address.ipv4_mapped or address.sixtofour
        if inner is None and address.teredo is not None:
            inner = address.teredo[1]
        if inner is None and address in _NAT64:
            inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if inner is not None and not inner.is_global:
            return True
    return not address.is_global or address.is_multicast


async def check(url: str, settings: NotifySettings, resolve: Resolver = system_resolver) -> Checked:
    """The destination and the address to connect to, or DestinationRefused with the reason."""
    destination = parse(url)
    if settings.webhook_allowed_hosts and not allow_listed(destination.host, settings):
        raise DestinationRefused("host not in the allowed webhook hosts (OBRUTEN_NOTIFY_WEBHOOK_ALLOWED_HOSTS)")
    local_name = destination.host == "localhost" or destination.host.endswith(".localhost")
    if local_name and not settings.webhook_allow_private:
        raise DestinationRefused("must not point at this machine")
    try:
        answers = await asyncio.wait_for(resolve(destination.host, destination.port), 10)
    except (OSError, UnicodeError, TimeoutError, ValueError):
        raise Unresolvable("the host does not resolve") from None
    addresses: list[IPAddress] = []
    for answer in answers:
        try:
            addresses.append(ipaddress.ip_address(answer.split("%", 1)[0]))
        except ValueError:
            raise DestinationRefused("the host resolves to something that is not an address") from None
    if not addresses:
        raise Unresolvable("the host does not resolve")
    if not settings.webhook_allow_private and any(not_global(a) for a in addresses):
        raise DestinationRefused(
            "must not point at this machine, a private or shared network or any address that is not "
            "globally routable (every address the host resolves to is checked)"
        )
    return Checked(destination, addresses[0])


async def check_registration(url: str, settings: NotifySettings, resolve: Resolver = system_resolver) -> None:
    """The check at registration. With the development opt-in (allow_private) a name that does
    not resolve yet is admitted: nothing private is guarded there, and delivery resolves again."""
    try:
        await check(url, settings, resolve)
    except Unresolvable:
        if not settings.webhook_allow_private:
            raise


async def pinned_request(
    http: httpx.AsyncClient, checked: Checked, *, content: bytes, headers: dict[str, str]
) -> httpx.Response:
    """POST to the checked address, naming the host in the Host header and in TLS (SNI and
    certificate check)."""
    d = checked.destination
    literal = f"[{checked.address}]" if checked.address.version == 6 else str(checked.address)
    url = f"{d.scheme}://{literal}:{d.port}{d.path_and_query}"
    host_name = f"[{d.host}]" if ":" in d.host else d.host
    host_header = f"{host_name}:{d.port}" if d.explicit_port else host_name
    extensions = {"sni_hostname": d.host} if d.scheme == "https" and not _is_ip_literal(d.host) else {}
    return await http.post(url, content=content, headers={**headers, "Host": host_header}, extensions=extensions)
