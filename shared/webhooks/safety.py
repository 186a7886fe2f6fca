"""Which receiver URLs the app may call: no server-side request forgery into the VNet or the host.

Checked when a subscription is made (a 422 naming the rule) and again before every attempt (a name may have been
pointed elsewhere since: DNS rebinding):
- `https` only, unless WEBHOOK_ALLOW_LOCAL (local development) allows `http` too;
- no user name or password in the URL (it would show in every GET), no fragment;
- every address the host name resolves to must be public: not loopback, link-local (169.254.169.254, the
  instance metadata endpoint, among them), private (10/8, 172.16/12, 192.168/16, fc00::/7), shared
  (100.64/10), multicast, reserved or unspecified; IPv4-mapped IPv6 addresses are judged as the IPv4 address;
- unless WEBHOOK_ALLOWED_HOSTS names the host (exactly) or a network (CIDR) holding the address: an operator's
  way to allow an internal receiver. WEBHOOK_ALLOW_LOCAL allows loopback (127.0.0.1, ::1) as well.
Redirects are never followed (delivery.py), so a public receiver cannot bounce a request inside.
What remains: between this check and the connection a name could still change (a very short window); an
operator who must exclude that points receivers at addresses, not names.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse
from typing import Callable

from shared.platform import settings
from shared.platform.errors import ValidationFailed

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrl(ValidationFailed):
    """A receiver URL the rules refuse (422). The message names the rule and the host, never the path or query."""


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        return []
    return sorted({info[4][0] for info in infos})


def _public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (
        address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address in ipaddress.ip_network("100.64.0.0/10")
    )


def _allowed(host: str, address: IPAddress, allow_local: bool) -> bool:
    if allow_local and address.is_loopback:
        return True
    for item in settings.get_list("WEBHOOK_ALLOWED_HOSTS"):
        if item.lower() == host.lower():
            return True
        try:
            if address in ipaddress.ip_network(item, strict=False):
                return True
        except ValueError:
            continue
    return _public(address)


def check_url(url: str, resolver: Resolver | None = None) -> urllib.parse.SplitResult:
    """The parsed URL if the app may call it now; UnsafeUrl (422) naming the rule otherwise."""
    allow_local = settings.get_bool("WEBHOOK_ALLOW_LOCAL")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeUrl("the subscription url is not a valid URL") from None
    schemes = ("https", "http") if allow_local else ("https",)
    if parts.scheme not in schemes:
        raise UnsafeUrl(f"the subscription url must use {' or '.join(schemes)}")
    host = parts.hostname or ""
    if not host:
        raise UnsafeUrl("the subscription url has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("the subscription url must not hold a user name or password")
    if parts.fragment:
        raise UnsafeUrl("the subscription url must not have a fragment")
    addresses = (resolver or _resolve)(host, port)
    if not addresses:
        raise UnsafeUrl(f"the subscription url's host {host[:100]} does not resolve")
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if not _allowed(host, address, allow_local):
            raise UnsafeUrl(
                f"the subscription url's host {host[:100]} resolves to a loopback, link-local, private or reserved "
                "address; such receivers need WEBHOOK_ALLOWED_HOSTS"
            )
    return parts
