"""SSRF-safe download of user-supplied image URLs.

Why not a library: ``drawbridge`` is async-only and has no hook to pin a test resolver or cap a
stream by our settings; ``safehttpx`` resolves through Google DNS over the network; ``advocate``
is tied to ``requests`` and unmaintained. The rules are few, so they are written here on
``http.client`` (see ../../../shared/design/RELIABILITY.md, "URL fetch"):

* scheme and port allow-lists; no userinfo; numeric host tricks (``2130706433``, ``0x7f000001``,
  ``0177.0.0.1``) decoded like ``inet_aton`` does and checked, never handed to a resolver;
* the host is resolved ONCE; EVERY address is checked against an explicit deny-list (IPv4-mapped,
  NAT64 and 6to4 forms unwrapped first: ``is_global`` alone passes ``64:ff9b::a9fe:a9fe``);
* the TCP connection goes to the pinned, checked address while the Host header and TLS SNI keep
  the hostname, so a DNS answer that changes between check and connect (rebinding) cannot matter;
* redirects are followed by hand, at most ``max_redirects``, each hop re-checked from the top;
* connect, per-read and total timeouts (a 1 byte/s server runs into the total deadline);
* the body is streamed under a byte cap whatever Content-Length says; the bytes must start with
  an allowed image signature (``images.sniff_image_type``).
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote, urljoin, urlsplit

from fashion_search.errors import FetchError, PayloadTooLarge, UnsafeURL
from fashion_search.settings import FetchSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]

_V4_DENY = [
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the local host on Linux
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT, shared address space
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local: EC2/ECS metadata lives here
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, includes 255.255.255.255
    )
]
_V6_DENY = [
    ipaddress.IPv6Network(n)
    for n in (
        "::/96",  # unspecified, loopback and the deprecated IPv4-compatible form
        "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215)
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments incl. Teredo (obfuscated IPv4 inside)
        "2001:db8::/32",  # documentation
        "fc00::/7",  # unique local; includes fd00:ec2::254 (EC2 IPv6 metadata)
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
]
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIXTOFOUR = ipaddress.IPv6Network("2002::/16")
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"
_DENIED_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
# Hosts made only of digits, dots and hex/octal prefixes: what inet_aton would decode.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}\.?$", re.I)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form delivers to (mapped, NAT64 well-known prefix, 6to4)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    return None


def is_denied(ip: IPAddress) -> bool:
    """True for every address a server-side fetch must never reach."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return True
        inner = embedded_ipv4(ip)
        if inner is not None:
            return is_denied(inner)
        return any(ip in net for net in _V6_DENY) or not ip.is_global
    return any(ip in net for net in _V4_DENY) or not ip.is_global


def _literal_ip(host: str) -> IPAddress | None:
    """The address a host string denotes without DNS, including inet_aton's numeric forms."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_HOST.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError as exc:
            raise UnsafeURL(f"malformed numeric host {host!r}", field="url") from exc
    return None


def default_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"cannot resolve host {host!r}", field="url") from exc
    return [str(info[4][0]) for info in infos]


class Connector(Protocol):
    def __call__(self, address: str, port: int, timeout: float) -> socket.socket: ...


def default_connector(address: str, port: int, timeout: float) -> socket.socket:
    return socket.create_connection((address, port), timeout=timeout)


@dataclass(frozen=True, slots=True)
class _Target:
    """A checked URL: scheme, hostname for Host/SNI, port, request path, pinned address."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def check_url(url: str, *, settings: FetchSettings, resolver: Resolver) -> _Target:
    """Parse, allow-list and resolve ``url`` once; raises ``UnsafeURL`` before any connection."""
    if len(url) > 4096 or any(c in url for c in "\r\n\t\x00 "):
        raise UnsafeURL("URL is too long or contains whitespace/control characters", field="url")
    try:
        parts = urlsplit(url)
        port_given = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"malformed URL: {exc}", field="url") from exc
    scheme = parts.scheme.lower()
    if scheme not in settings.allowed_schemes:
        allowed = ", ".join(settings.allowed_schemes)
        raise UnsafeURL(f"scheme {scheme or '(none)'!r} is not allowed ({allowed})", field="url")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeURL("URLs with user credentials are not allowed", field="url")
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeURL("URL has no host", field="url")
    try:  # DNS and the Host header speak ASCII: internationalised names go as punycode
        host = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise UnsafeURL(f"host {host!r} is not a valid domain name", field="url") from exc
    port = port_given if port_given is not None else (443 if scheme == "https" else 80)
    if port not in settings.allowed_ports:
        raise UnsafeURL(f"port {port} is not allowed", field="url")
    if host.rstrip(".") in _DENIED_NAMES or host.rstrip(".").endswith(".localhost"):
        raise UnsafeURL(f"host {host!r} is not a public address", field="url")
    literal = _literal_ip(host)
    addresses = [str(literal)] if literal is not None else list(resolver(host, port))
    if not addresses:
        raise FetchError(f"host {host!r} has no addresses", field="url")
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if "%" in address or is_denied(ip):
            raise UnsafeURL(f"host {host!r} resolves to a non-public address", field="url")
    # Non-ASCII in the path or query is percent-encoded (UTF-8); existing escapes are kept.
    path = quote(parts.path or "/", safe=_URL_SAFE)
    if parts.query:
        path += "?" + quote(parts.query, safe=_URL_SAFE)
    return _Target(scheme=scheme, host=host, port=port, path=path, address=addresses[0])


class _PinnedConnection(http.client.HTTPConnection):
    """HTTP(S) to a fixed address; Host header and SNI still name the original host."""

    def __init__(self, target: _Target, *, timeout: float, connector: Connector) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._target = target
        self._connector = connector

    def connect(self) -> None:
        assert self.timeout is not None
        sock = self._connector(self._target.address, self._target.port, float(self.timeout))
        if self._target.scheme == "https":
            ctx = ssl.create_default_context()
            try:
                sock = ctx.wrap_socket(sock, server_hostname=self._target.host)
            except BaseException:
                sock.close()
                raise
        self.sock = sock


class ImageFetcher:
    """Fetches image bytes from public URLs. ``resolver``/``connector`` are injectable for tests."""

    def __init__(
        self,
        settings: FetchSettings,
        *,
        resolver: Resolver = default_resolver,
        connector: Connector = default_connector,
    ) -> None:
        self.settings = settings
        self._resolver = resolver
        self._connector = connector

    def fetch(self, url: str, *, max_bytes: int | None = None) -> bytes:
        cap = min(max_bytes or self.settings.max_bytes, self.settings.max_bytes)
        deadline = time.monotonic() + self.settings.total_timeout_s
        for _hop in range(self.settings.max_redirects + 1):
            target = check_url(url, settings=self.settings, resolver=self._resolver)
            location = self._get(target, cap=cap, deadline=deadline)
            if isinstance(location, bytes):
                return location
            url = urljoin(url, location)
        raise FetchError(f"more than {self.settings.max_redirects} redirects", field="url")

    def _get(self, target: _Target, *, cap: int, deadline: float) -> bytes | str:
        """The body, or the next URL when the answer is a redirect."""
        conn = _PinnedConnection(
            target, timeout=self.settings.connect_timeout_s, connector=self._connector
        )
        watchdog: threading.Timer | None = None
        try:
            conn.connect()
            # Kept: http.client hands the socket to the response on "Connection: close".
            sock = conn.sock
            assert sock is not None
            sock.settimeout(self._read_timeout(deadline))
            # Per-read timeouts do not stop a server that dribbles one byte at a time (also
            # inside the headers, which http.client reads line by line): at the total deadline
            # the socket is shut down under the reader.
            watchdog = threading.Timer(max(deadline - time.monotonic(), 0.0), _shutdown, (sock,))
            watchdog.daemon = True
            watchdog.start()
            headers = {"User-Agent": self.settings.user_agent, "Accept": "image/*"}
            conn.request("GET", target.path, headers=headers)
            resp = conn.getresponse()
            if resp.status in (301, 302, 303, 307, 308):
                location = resp.getheader("Location")
                if not location:
                    raise FetchError("redirect without a Location header", field="url")
                return location
            if resp.status != 200:
                raise FetchError(f"the URL answered HTTP {resp.status}", field="url")
            declared = resp.getheader("Content-Length")
            if declared and declared.isdigit() and int(declared) > cap:
                raise PayloadTooLarge(f"the image at the URL is over {cap} bytes", field="url")
            data = self._read_capped(resp, sock, cap=cap, deadline=deadline)
        except TimeoutError as exc:
            raise FetchError("timed out fetching the URL", field="url") from exc
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if time.monotonic() >= deadline:
                raise FetchError("timed out fetching the URL", field="url") from exc
            name = exc.__class__.__name__
            raise FetchError(f"could not fetch the URL: {name}", field="url") from exc
        finally:
            if watchdog is not None:
                watchdog.cancel()
            conn.close()
        _check_magic(data)
        return data

    def _read_capped(
        self,
        resp: http.client.HTTPResponse,
        sock: socket.socket,
        *,
        cap: int,
        deadline: float,
    ) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            sock.settimeout(self._read_timeout(deadline))
            chunk = resp.read1(64 * 1024)
            if not chunk:
                return b"".join(chunks)
            total += len(chunk)
            if total > cap:
                raise PayloadTooLarge(f"the image at the URL is over {cap} bytes", field="url")
            chunks.append(chunk)

    def _read_timeout(self, deadline: float) -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("total fetch deadline passed")
        return min(self.settings.read_timeout_s, remaining)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed: nothing left to stop
        pass


def _check_magic(data: bytes) -> None:
    from fashion_search.images import sniff_image_type

    if sniff_image_type(data) is None:
        raise FetchError(
            "the URL did not return a supported image (JPEG, PNG, WebP, GIF)", field="url"
        )


def fetch_image(url: str, *, settings: FetchSettings, max_bytes: int | None = None) -> bytes:
    """Download an image from a public URL under every rule above."""
    return ImageFetcher(settings).fetch(url, max_bytes=max_bytes)
