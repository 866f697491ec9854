"""Where the server may send requests of its own (webhooks): SEC1, the server-side request forgery guard.

A webhook URL is a request the server makes on a merchant's behalf, from inside the operator's network. Without a
guard any merchant could aim it at ``127.0.0.1:5432``, ``10.0.0.1`` or the cloud's metadata service
(``169.254.169.254``, ``metadata.google.internal``) and read the delivery log as a port scanner. So:

- the URL's host is resolved **once**, every address it resolves to is classified (:func:`classify`), and a URL any
  of whose addresses is loopback, private, link-local, CGNAT (100.64/10), multicast, unspecified, reserved, an
  IPv4-mapped / NAT64 / 6to4 / Teredo IPv6 form of one of those, or a metadata name or address is refused — at
  registration (:func:`check_url`, a 422 with rule SEC1) and again at every delivery (:func:`pin`);
- the delivery then connects to **the address that was checked** (the URL carries the IP; the ``Host`` header and
  the TLS SNI / certificate check use the name): a DNS answer that changes between the check and the connection
  (DNS rebinding) cannot move the request elsewhere;
- ``AFTERSALES_WEBHOOK_ALLOW_PRIVATE`` (off by default) lets an operator reach loopback, private, link-local and CGNAT
  receivers (the test suite's local receiver); metadata, unspecified, multicast and reserved addresses stay refused;
- in production (``AFTERSALES_ENV=production``) only ``https`` URLs are accepted.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

import httpx

from aftersales import i18n
from aftersales.domain.messages import Msg

from .errors import Invalid

IP = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Cloud instance-metadata services, by name and by address: never a webhook target, whatever the settings.
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data",
                            "instance-data.ec2.internal", "metadata.azure.internal", "metadata.tencentyun.com"})
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "169.254.169.253", "fd00:ec2::254", "100.100.100.200"))
CGNAT = ipaddress.ip_network("100.64.0.0/10")
THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
PRIVATE = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))
#: The kinds ``AFTERSALES_WEBHOOK_ALLOW_PRIVATE`` lets through; every other kind is always refused.
PRIVATE_KINDS = frozenset({"loopback", "private", "link_local", "cgnat"})

#: The resolver (``socket.getaddrinfo``); tests replace it to play a DNS that changes its answers.
getaddrinfo = socket.getaddrinfo


@dataclass(frozen=True, slots=True)
class Egress:
    """What the operator allows webhooks (config: ``AFTERSALES_WEBHOOK_ALLOW_PRIVATE``, https only in production,
    ``AFTERSALES_WEBHOOK_MAX_SUBSCRIPTIONS``). The default is the safe one."""

    allow_private: bool = False
    https_only: bool = False
    max_subscriptions: int = 10


class RefusedTarget(Invalid):
    """SEC1: a webhook URL the server will not send requests to (422, with the field)."""

    rule = "SEC1"

    def __init__(self, detail: str, field: str = "url", **params: Any) -> None:
        problem = Msg(detail, params)
        super().__init__("{field}: {problem}", field=field, problem=problem)
        self.errors = [{"field": field, "in": "body", "message": i18n.render(problem, "en"), "type": "refused_target"}]


@dataclass(frozen=True, slots=True)
class Target:
    """A URL pinned to one checked address: connect to ``ip``, speak to ``host``."""

    url: httpx.URL
    host: str
    ip: IP

    @property
    def request_url(self) -> httpx.URL:
        """The URL with the checked address in place of the name: httpx connects there and resolves nothing."""
        return self.url.copy_with(host=str(self.ip))

    @property
    def host_header(self) -> str:
        default = 443 if self.url.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.url.port in (None, default) else f"{name}:{self.url.port}"

    @property
    def extensions(self) -> dict[str, Any]:
        """TLS: the name goes in the SNI and the certificate is checked against it, not against the address."""
        return {"sni_hostname": self.host} if self.url.scheme == "https" else {}


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped ``::ffff:a.b.c.d``, NAT64, 6to4, Teredo), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def classify(ip: IP) -> str | None:
    """The kind of a non-public address (``loopback``, ``private``, ``link_local``, ``cgnat``, ``multicast``,
    ``unspecified``, ``reserved``, ``metadata``), or None for a public one."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
        inner = _embedded_v4(ip)
        if inner is not None:
            kind = classify(inner)
            if kind is not None:
                return kind
    if ip in METADATA_ADDRESSES:
        return "metadata"
    if ip.is_unspecified or (isinstance(ip, ipaddress.IPv4Address) and ip in THIS_NETWORK):
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_multicast:
        return "multicast"
    if ip.is_link_local:
        return "link_local"
    if isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT:
        return "cgnat"
    if any(ip in net for net in PRIVATE):
        return "private"
    if ip.is_reserved or not ip.is_global:
        return "reserved"
    return None


def allowed(kind: str | None, egress: Egress) -> bool:
    return kind is None or (egress.allow_private and kind in PRIVATE_KINDS)


def _parse(url: str, egress: Egress) -> tuple[httpx.URL, str]:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError):
        raise RefusedTarget("not a valid absolute URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise RefusedTarget("must be an absolute http(s) URL")
    if egress.https_only and parsed.scheme != "https":
        raise RefusedTarget("must be an https URL in production")
    host = parsed.host.lower().rstrip(".")
    if host in METADATA_NAMES:
        raise RefusedTarget("the host is a cloud metadata service, which webhooks may not reach")
    return parsed, host


def resolve(host: str, port: int) -> list[IP]:
    """Every address ``host`` resolves to (an IP literal is its own answer); [] when it does not resolve."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    out: list[IP] = []
    for info in infos:
        try:
            ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        except ValueError:
            continue
        if ip not in out:
            out.append(ip)
    return out


class Unresolved(Exception):
    """The host resolves to no address (now): a connection error of the delivery, not a refusal."""


def _checked(url: str, egress: Egress) -> tuple[httpx.URL, str, list[IP]]:
    parsed, host = _parse(url, egress)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = resolve(host, port)
    for ip in addresses:
        kind = classify(ip)
        if not allowed(kind, egress):
            # The kind, never the address: the answer must not tell the internal network's layout.
            raise RefusedTarget("the host resolves to a {kind} address, which webhooks may not reach", kind=str(kind).replace("_", "-"))
    return parsed, host, addresses


def pin(url: str, egress: Egress) -> Target:
    """At every delivery: resolve once, check every address, and pin the URL to the first one. Raises
    :class:`RefusedTarget`, or :class:`Unresolved` when the name resolves to nothing."""
    parsed, host, addresses = _checked(url, egress)
    if not addresses:
        raise Unresolved(host)
    return Target(parsed, host, addresses[0])


def check_url(url: str, egress: Egress) -> None:
    """SEC1 at registration: the same check as at every delivery. A name that does not resolve (yet) is accepted:
    every delivery checks again before it connects."""
    _checked(url, egress)
