"""Where a webhook may point (SSRF-1): the host must resolve, and only to global addresses.

Checked when a webhook is created or its URL changed, and again at every attempt, which then
connects to the very address it checked (api.webhooks.delivery), so a name that resolves
elsewhere the second time (DNS rebinding) gains nothing. WEBHOOK_ALLOW_PRIVATE_TARGETS=true
lifts the rules (test suites, a development machine).

`resolve` is looked up at call time: tests replace it to control what a name resolves to.
"""

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from api.config import Environment, settings
from api.errors import AppError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
DOCUMENTATION = tuple(
    ipaddress.ip_network(network)
    for network in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)


class WebhookUrlNotAllowed(AppError):
    """The URL is refused: not https, its host does not resolve, or it resolves to an
    address that is not public."""

    status_code = 422
    code = "WEBHOOK_URL_NOT_ALLOWED"
    example_reason = "The host hooks.internal.example resolves to 10.20.0.7, a private address"


async def _system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (empty or OSError: it does not resolve)."""
    return await _system_resolve(host, port)


@dataclass(frozen=True)
class Target:
    """A URL's parts and the checked address an attempt connects to."""

    scheme: str
    host: str
    port: int
    address: str


def refusal(address: IPAddress) -> str | None:
    """Why an address may not be a webhook target; None: it may."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return f"an IPv6 form of the IPv4 address {embedded}"
    checks = (
        (address.is_loopback, "loopback"),
        (address.is_unspecified, "unspecified"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (any(address in network for network in DOCUMENTATION), "documentation"),
        (address.is_reserved, "reserved"),
        (address in SHARED_ADDRESS_SPACE, "shared (100.64.0.0/10)"),
        (address.is_private, "private"),
        (not address.is_global, "not global"),
    )
    for refused, why in checks:
        if refused:
            return f"{'an' if why[0] in 'aeiou' else 'a'} {why} address"
    return None


def _port(scheme: str, port: int | None) -> int:
    return port or (443 if scheme == "https" else 80)


def check_scheme(url: str) -> None:
    if settings.WEBHOOK_ALLOW_PRIVATE_TARGETS:
        return
    scheme = urlsplit(url).scheme
    if scheme != "https" and settings.ENVIRONMENT is not Environment.DEVELOPMENT:
        raise WebhookUrlNotAllowed(reason="The URL must use https")


async def check_url(url: str) -> Target:
    """The URL's target with an address it may connect to; WebhookUrlNotAllowed otherwise."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    scheme = parts.scheme
    port = _port(scheme, parts.port)
    check_scheme(url)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        found = [str(literal)]
    else:
        try:
            found = await resolve(host, port)
        except (OSError, UnicodeError):
            found = []
    if not found:
        raise WebhookUrlNotAllowed(reason=f"The host {host} does not resolve")
    addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
    if not settings.WEBHOOK_ALLOW_PRIVATE_TARGETS:
        for address in addresses:
            why = refusal(address)
            if why is not None:
                raise WebhookUrlNotAllowed(reason=f"The host {host} resolves to {address}, {why}")
    return Target(scheme=scheme, host=host, port=port, address=str(addresses[0]))
