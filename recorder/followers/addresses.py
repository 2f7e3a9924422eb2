"""Where a webhook may be delivered: the refused addresses, with their sources, in one place.

A delivery is refused when the address it would reach, or an IPv4 address embedded in
it, is in ``REFUSED``, and a URL is refused when its host is in ``REFUSED_HOSTS``. The
check runs when a subscription is created (on the URL's host and what it resolves to)
and again on every connection, against the address actually connected to, so DNS cannot
sneak past it. ``DURASCOPE_WEBHOOKS_ALLOW_PRIVATE=1`` lifts it.

Loopback and RFC 1918 addresses are *not* refused: Durascope is self-hosted and a
receiver on the same host or network is the common case. What such a receiver answers
is not kept in the delivery log, though (``is_private``): the log must not become a way
to read internal services through a subscription that points at them.

IPv6 forms that carry an IPv4 address (``embedded_ipv4``), each checked as that IPv4:

* IPv4-mapped ``::ffff:0:0/96`` and IPv4-translated ``::ffff:0:0:0/96`` (RFC 4291, 2765);
* IPv4-compatible ``::/96`` (RFC 4291, deprecated; ``::`` and ``::1`` excepted);
* NAT64 ``64:ff9b::/96`` and the local-use ``64:ff9b:1::/48`` (RFC 6052, RFC 8215), where a
  translator on the path turns them into the IPv4 address inside. A network-specific NAT64
  prefix an operator picks cannot be recognised from the address alone;
* 6to4 ``2002::/16`` (RFC 3056) and Teredo ``2001::/32`` (RFC 4380: server and client).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class RefusedRange:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    what: str
    source: str


def _r(cidr: str, what: str, source: str) -> RefusedRange:
    return RefusedRange(ipaddress.ip_network(cidr), what, source)


REFUSED: tuple[RefusedRange, ...] = (
    _r(
        "169.254.0.0/16",
        "a link-local address (cloud metadata endpoints live there: 169.254.169.254 on AWS, "
        "Google Cloud, Azure, Oracle Cloud, DigitalOcean and OpenStack; 169.254.170.2 ECS task metadata; "
        "169.254.170.23 EKS Pod Identity)",
        "RFC 3927; https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html; "
        "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-metadata-endpoint-v2.html; "
        "https://docs.aws.amazon.com/eks/latest/userguide/pod-id-agent-setup.html; "
        "https://learn.microsoft.com/en-us/azure/virtual-machines/instance-metadata-service; "
        "https://docs.oracle.com/en-us/iaas/Content/Compute/Tasks/gettingmetadata.htm",
    ),
    _r(
        "fe80::/10",
        "a link-local address (OpenStack's IPv6 metadata endpoint fe80::a9fe:a9fe lives there)",
        "RFC 4291; https://specs.openstack.org/openstack/neutron-specs/specs/ussuri/metadata-add-ipv6-support.html",
    ),
    _r(
        "fd00:ec2::254/128",
        "a cloud metadata address (AWS EC2 instance metadata over IPv6)",
        "https://docs.aws.amazon.com/whitepapers/latest/ipv6-on-aws/supporting-amazon-vpc-services.html",
    ),
    _r(
        "fd00:ec2::23/128",
        "a cloud metadata address (AWS EKS Pod Identity Agent over IPv6: credentials)",
        "https://docs.aws.amazon.com/eks/latest/userguide/pod-id-agent-setup.html",
    ),
    _r(
        "fd20:ce::254/128",
        "a cloud metadata address (Google Compute Engine metadata server over IPv6)",
        "https://cloud.google.com/compute/docs/metadata/querying-metadata",
    ),
    _r(
        "168.63.129.16/32",
        "a cloud metadata address (Azure WireServer: VM agent and extension configuration)",
        "https://learn.microsoft.com/en-us/azure/virtual-network/what-is-ip-address-168-63-129-16",
    ),
    _r(
        "100.100.100.200/32",
        "a cloud metadata address (Alibaba Cloud ECS instance metadata)",
        "https://www.alibabacloud.com/help/en/ecs/user-guide/view-instance-metadata",
    ),
    _r(
        "192.0.0.192/32",
        "a cloud metadata address (Oracle Cloud Infrastructure Classic instance metadata)",
        "https://github.com/swisskyrepo/PayloadsAllTheThings/blob/master/Server%20Side%20Request%20Forgery/"
        "SSRF-Cloud-Instances.md",
    ),
)

# Names that resolve to a metadata endpoint inside the cloud; refused before any lookup.
REFUSED_HOSTS: dict[str, str] = {
    "metadata.google.internal": "https://cloud.google.com/compute/docs/metadata/querying-metadata",
    "metadata.goog": "https://cloud.google.com/compute/docs/metadata/querying-metadata",
    "metadata": "https://cloud.google.com/compute/docs/metadata/querying-metadata",
    "instance-data": "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html",
    "instance-data.ec2.internal": "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html",
    "metadata.tencentyun.com": "https://www.tencentcloud.com/document/product/213/4934",
}

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


def _rfc6052(value: int, prefix_len: int) -> ipaddress.IPv4Address:
    """The IPv4 address in an IPv4-embedded IPv6 address with a ``prefix_len`` prefix
    (RFC 6052, section 2.2: bits 64-71 are skipped)."""
    bits = f"{value:0128b}"
    start = prefix_len
    if prefix_len == 96:
        v4 = bits[96:]
    else:
        before = bits[start:64]
        v4 = before + bits[72 : 72 + 32 - len(before)]
    return ipaddress.IPv4Address(int(v4, 2))


def embedded_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address an IPv6 address carries (see the module docstring)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    n = int(ip)
    high, low = n >> 32, ipaddress.IPv4Address(n & 0xFFFFFFFF)
    out: list[ipaddress.IPv4Address] = []
    if high == 0xFFFF or high == 0xFFFF0000:  # mapped ::ffff:a.b.c.d, translated ::ffff:0:a.b.c.d
        out.append(low)
    elif high == 0 and n > 1:  # IPv4-compatible ::a.b.c.d
        out.append(low)
    if ip in _NAT64:
        out.append(low)
    elif ip in _NAT64_LOCAL:
        out.extend(_rfc6052(n, length) for length in (48, 56, 64, 96))
    if ip.sixtofour is not None:
        out.append(ip.sixtofour)
    if ip.teredo is not None:
        out.extend(ip.teredo)
    return out


def _parse(addr: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError:
        return None


def refused_address(addr: str) -> str | None:
    """Why delivering to IP ``addr`` is refused, or None when it is allowed (and for a name)."""
    ip = _parse(addr)
    if ip is None:
        return None
    for candidate in (ip, *embedded_ipv4(ip)):
        for entry in REFUSED:
            if candidate.version == entry.network.version and candidate in entry.network:
                inside = "" if candidate == ip else f"{ip} carries {candidate}, "
                return f"{inside}{candidate} is {entry.what}"
    return None


def refused_host(host: str) -> str | None:
    """Why a URL's host (a name or an IP literal) is refused, or None."""
    h = host.lower().rstrip(".")
    if h in REFUSED_HOSTS:
        return f"{host} is a cloud metadata host"
    return refused_address(h)


def is_private(addr: str) -> bool:
    """True unless ``addr`` and every IPv4 address inside it are globally reachable: what
    such a peer answers is not kept in the delivery log."""
    ip = _parse(addr)
    if ip is None:
        return True
    return not all(candidate.is_global for candidate in (ip, *embedded_ipv4(ip)))
