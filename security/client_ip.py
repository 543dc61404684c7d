"""The one place that decides who the client is.

Behind N trusted proxies, each appends the address it saw to X-Forwarded-For, so the real
client is the entry N from the right; everything left of it is whatever the client chose to
send. With no trusted proxy the header is ignored and the socket peer is the client.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class ClientIP:
    ip: str
    # True when a trusted-proxy header was expected but malformed: a header anomaly.
    anomaly: bool = False


def parse_ip(value: str) -> IPAddress | None:
    """Parse one address as proxies write it: optional port, brackets, IPv4-mapped IPv6."""
    value = value.strip().strip('"')
    if not value:
        return None
    if value.startswith("["):  # [2001:db8::1]:443
        end = value.find("]")
        if end == -1:
            return None
        value = value[1:end]
    elif value.count(":") == 1:  # 203.0.113.9:5123
        value = value.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def resolve_client_ip(remote_addr: str | None, forwarded_for: str | None, trusted_hops: int) -> ClientIP:
    """Return the client address given the socket peer, the X-Forwarded-For header and the proxy count."""
    peer = parse_ip(remote_addr or "")
    # Mangum behind an ALB hands the whole X-Forwarded-For string over as the peer: take its last entry.
    if peer is None and remote_addr and "," in remote_addr:
        peer = parse_ip(remote_addr.rsplit(",", 1)[-1])
    fallback = str(peer) if peer is not None else "0.0.0.0"  # noqa: S104 (no usable peer address)
    if trusted_hops <= 0:
        return ClientIP(fallback)
    entries = [item for item in (forwarded_for or "").split(",")]
    if len(entries) < trusted_hops or not forwarded_for:
        return ClientIP(fallback, anomaly=True)
    chosen = parse_ip(entries[-trusted_hops])
    if chosen is None:
        return ClientIP(fallback, anomaly=True)
    return ClientIP(str(chosen))
