"""Fetching and PUTting user-given URLs from a service without opening a door into its network.

A URL in a task (inputImage, uploadEndpoint) is chosen by whoever sends the request, so the service
must not become a proxy to its own loopback, private network or cloud metadata endpoint (SSRF):
- only http and https;
- the host is resolved once, every address is checked, and the connection goes to that checked
  address (the hostname stays in the Host header and TLS SNI/certificate check), so a DNS answer
  that changes between check and connect (rebinding) cannot slip through;
- redirects are followed by hand, each new location checked the same way;
- bodies are read in chunks and refused past a size cap; every step has a timeout.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

from .errors import InvalidParameter, MaskMarginError, UnsafeURL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class URLPolicy:
    """Which addresses a URL may reach, and how much may be read from it."""

    allow_private: bool = False  # True: any address (a service on a trusted network)
    allowed_networks: tuple[IPNetwork, ...] = ()  # exceptions to the public-only rule, e.g. an internal bucket
    max_bytes: int = 32 * 1024 * 1024
    timeout: float = 30.0
    max_redirects: int = 5

    def allows(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
        if self.allow_private or any(address in net for net in self.allowed_networks):
            return True
        return address.is_global and not (address.is_multicast or address.is_reserved or address.is_unspecified)


def parse_networks(values: list[str] | tuple[str, ...]) -> tuple[IPNetwork, ...]:
    out = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value, strict=False))
        except ValueError as exc:
            raise InvalidParameter(f"not an IP network: {value!r}", parameter="allowed_networks") from exc
    return tuple(out)


def checked_address(url: str, policy: URLPolicy, parameter: str) -> tuple[httpx.URL, IPAddress]:
    """(parsed URL, the address to connect to) when every address the host resolves to is allowed."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise InvalidParameter(f"{parameter} is not a valid URL", parameter=parameter) from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UnsafeURL(f"{parameter} must be an http or https URL", parameter=parameter)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parsed.host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidParameter(f"{parameter} host {parsed.host!r} cannot be resolved", parameter=parameter) from exc
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    refused = [a for a in addresses if not policy.allows(a)]
    if not addresses or refused:
        raise UnsafeURL(
            f"{parameter} points at a private, loopback, link-local or reserved address "
            f"({refused[0] if refused else '?'}); "
            "the service refuses those unless started with --allow-private-urls",
            parameter=parameter,
        )
    return parsed, addresses[0]


def _pinned(parsed: httpx.URL, address: IPAddress) -> tuple[httpx.URL, dict, dict]:
    """The URL aimed at the checked address, with Host header and TLS name of the original host."""
    host_header = parsed.host if parsed.port is None else f"{parsed.host}:{parsed.port}"
    if ":" in parsed.host:  # an IPv6 literal keeps its brackets in Host
        host_header = f"[{parsed.host}]" if parsed.port is None else f"[{parsed.host}]:{parsed.port}"
    extensions = {"sni_hostname": parsed.host} if parsed.scheme == "https" else {}
    return parsed.copy_with(host=str(address)), {"Host": host_header}, extensions


def fetch(url: str, policy: URLPolicy, parameter: str = "inputImage") -> bytes:
    """The body of a GET on `url`, following at most `max_redirects` checked redirects."""
    with httpx.Client(timeout=policy.timeout, follow_redirects=False, trust_env=False) as client:
        for _ in range(policy.max_redirects + 1):
            parsed, address = checked_address(url, policy, parameter)
            target, headers, extensions = _pinned(parsed, address)
            try:
                request = client.build_request("GET", target, headers=headers, extensions=extensions)
                response = client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise InvalidParameter(
                    f"{parameter} URL could not be fetched ({type(exc).__name__})", parameter=parameter
                ) from exc
            try:
                if response.status_code in REDIRECTS and "location" in response.headers:
                    url = urljoin(str(parsed), response.headers["location"])
                    continue
                if response.status_code >= 400:
                    raise InvalidParameter(f"{parameter} URL answered HTTP {response.status_code}", parameter=parameter)
                return _read_capped(response, policy.max_bytes, parameter)
            finally:
                response.close()
        raise InvalidParameter(f"{parameter} URL redirects more than {policy.max_redirects} times", parameter=parameter)


def _read_capped(response: httpx.Response, limit: int, parameter: str) -> bytes:
    too_big = InvalidParameter(f"{parameter} URL is larger than {limit // (1024 * 1024)} MiB", parameter=parameter)
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    try:
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise too_big
            chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise InvalidParameter(
            f"{parameter} URL could not be read ({type(exc).__name__})", parameter=parameter
        ) from exc
    return b"".join(chunks)


def put(url: str, data: bytes, content_type: str, policy: URLPolicy, parameter: str = "uploadEndpoint") -> None:
    """PUT `data` to a checked URL; redirects are not followed (a pre-signed URL never needs one)."""
    send(url, data, content_type, policy, parameter, method="PUT")


def send(url: str, data: bytes, content_type: str, policy: URLPolicy, parameter: str, method: str = "POST") -> None:
    """PUT or POST `data` to a checked URL (uploadEndpoint, webhookURL); redirects are not followed."""
    parsed, address = checked_address(url, policy, parameter)
    target, headers, extensions = _pinned(parsed, address)
    headers["Content-Type"] = content_type
    try:
        with httpx.Client(timeout=policy.timeout, follow_redirects=False, trust_env=False) as client:
            request = client.build_request(method, target, content=data, headers=headers, extensions=extensions)
            response = client.send(request)
    except httpx.HTTPError as exc:
        raise MaskMarginError(
            f"{parameter} could not be reached ({type(exc).__name__})", parameter=parameter, code="uploadFailed"
        ) from exc
    if response.status_code >= 300:
        raise MaskMarginError(
            f"{parameter} answered HTTP {response.status_code}", parameter=parameter, code="uploadFailed"
        )
