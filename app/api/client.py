"""Who is calling: the client's address, honouring X-Forwarded-For only from trusted proxies."""

import ipaddress

from fastapi import Request

from app.core.config import Settings


def client_ip(request: Request, settings: Settings) -> str:
    """The sender's address: the peer, or X-Forwarded-For when the peer is a trusted proxy.

    The header is read right to left, stopping at the first address that is not a trusted
    proxy, so a client cannot pick its own address by sending the header itself.
    """
    peer = request.client.host if request.client else ""
    trusted = settings.trusted_proxies

    def is_trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in network for network in trusted)

    if not is_trusted(peer):
        return peer
    # Every X-Forwarded-For line, in order: one list (RFC 9110, 5.3), and a proxy may add its own
    # line after the client's rather than append to it.
    forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            return hop
    return peer
