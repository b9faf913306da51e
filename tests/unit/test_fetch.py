"""SSRF-safe fetch: every case of RELIABILITY.md "URL fetch".

Servers listen on 127.0.0.1 only. A "public" host is simulated with an injected resolver (the
name resolves to a public address) and connector (that address is routed to the local server),
so the guard itself sees real public/private addresses while no packet leaves the machine.
"""

from __future__ import annotations

import io
import ipaddress
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from fashion_search.errors import FetchError, PayloadTooLarge, UnsafeURL
from fashion_search.fetch import ImageFetcher, check_url, default_connector, is_denied
from fashion_search.settings import FetchSettings
from PIL import Image

PUBLIC = "93.184.216.34"
Handler = Callable[[socket.socket, bytes], None]


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], int]]:
    """Start raw TCP servers on 127.0.0.1; each handler gets the socket and the request head."""
    servers: list[_Server] = []

    def start(handler: Handler) -> int:
        class H(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = self.request.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                try:
                    handler(self.request, head)
                except OSError:
                    pass  # the client hung up on purpose (cap, timeout)

        server = _Server(("127.0.0.1", 0), H)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return int(server.server_address[1])

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def respond(body: bytes, *, ctype: str = "image/png", extra: str = "") -> Handler:
    def handler(sock: socket.socket, head: bytes) -> None:
        sock.sendall(
            f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            f"{extra}Connection: close\r\n\r\n".encode()
            + body
        )

    return handler


class Net:
    """Injected DNS and routing: names -> addresses; public addresses -> the local server."""

    def __init__(self, port: int, answers: dict[str, list[list[str]]] | None = None) -> None:
        self.port = port
        self.answers = answers or {}
        self.lookups: list[str] = []
        self.connections: list[str] = []

    def resolve(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        queue = self.answers.get(host)
        if not queue:
            raise FetchError(f"cannot resolve host {host!r}", field="url")
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def connect(self, address: str, port: int, timeout: float) -> socket.socket:
        self.connections.append(address)
        assert not is_denied(ipaddress.ip_address(address)), "guard let a private address through"
        return default_connector("127.0.0.1", self.port, timeout)


def fetcher(net: Net, **overrides: object) -> ImageFetcher:
    settings = FetchSettings(allowed_ports=[80, 443, net.port], **overrides)  # type: ignore[arg-type]
    return ImageFetcher(settings, resolver=net.resolve, connector=net.connect)


REJECTED = [
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://100.64.0.1/",
    "http://127.0.0.1:9001/2018-06-01/runtime/invocation/next",
    "http://localhost:2773/",
    "http://0.0.0.0/",
    "http://[::1]/",
    "http://10.0.0.1/",
    "http://192.168.1.1/",
    "http://[fd00:ec2::254]/",
    "http://224.0.0.1/",
    "http://[2002:a9fe:a9fe::1]/",  # 6to4 wrapping of the metadata address
    "http://[fe80::1%25eth0]/",
    # numeric tricks inet_aton accepts
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://0x7f000001/",
    "http://127.1/",
    # schemes, userinfo, ports
    "file:///etc/passwd",
    "ftp://example.com/a.jpg",
    "gopher://example.com:70/_x",
    "http://user:pw@images.example/a.jpg",
    "http://images.example@127.0.0.1/a.jpg",
    "http://images.example:8080/a.jpg",
    "http://LOCALHOST./a.jpg",
    "http://foo.localhost/a.jpg",
]


@pytest.mark.parametrize("url", REJECTED)
def test_rejected_before_any_connection(url: str) -> None:
    # Even with the odd ports allowed, the address/scheme/userinfo checks refuse these.
    net = Net(9001, {"images.example": [[PUBLIC]]})
    settings = FetchSettings(allowed_ports=[80, 443, 2773, 9001])
    guard = ImageFetcher(settings, resolver=net.resolve, connector=net.connect)
    with pytest.raises(UnsafeURL) as info:
        guard.fetch(url)
    assert info.value.field == "url"
    assert net.connections == []


def test_ports_other_than_80_443_rejected_by_default() -> None:
    net = Net(0, {"images.example": [[PUBLIC]]})
    with pytest.raises(UnsafeURL, match="port 8443"):
        check_url(
            "https://images.example:8443/x.png", settings=FetchSettings(), resolver=net.resolve
        )


@pytest.mark.parametrize(
    ("address", "denied"),
    [
        ("64:ff9b::a9fe:a9fe", True),  # is_global says True for this one: the deny-list must not
        ("::ffff:a9fe:a9fe", True),
        ("224.0.0.1", True),
        ("ff02::1", True),
        ("fd00:ec2::254", True),
        ("100.100.100.200", True),
        ("198.18.0.1", True),
        ("255.255.255.255", True),
        ("2001:db8::1", True),
        ("::", True),
        (PUBLIC, False),
        ("2606:4700:4700::1111", False),
        ("64:ff9b::808:808", False),  # NAT64 of a public address stays allowed
    ],
)
def test_deny_list(address: str, denied: bool) -> None:
    assert is_denied(ipaddress.ip_address(address)) is denied


def test_public_host_fetched_and_host_header_kept(serve: Callable[[Handler], int]) -> None:
    heads: list[bytes] = []
    image = png_bytes()

    def handler(sock: socket.socket, head: bytes) -> None:
        heads.append(head)
        respond(image)(sock, head)

    net = Net(0)
    net.port = serve(handler)
    net.answers = {"images.example": [[PUBLIC]]}
    data = fetcher(net).fetch(f"http://images.example:{net.port}/red.png?size=4")
    assert data == image
    assert net.connections == [PUBLIC]
    assert f"Host: images.example:{net.port}".encode() in heads[0]
    assert heads[0].startswith(b"GET /red.png?size=4 HTTP/1.1")


def test_unicode_host_and_path_are_encoded(serve: Callable[[Handler], int]) -> None:
    heads: list[bytes] = []

    def handler(sock: socket.socket, head: bytes) -> None:
        heads.append(head)
        respond(png_bytes())(sock, head)

    net = Net(serve(handler), {"xn--bcher-kva.example": [[PUBLIC]]})
    fetcher(net).fetch(f"http://bücher.example:{net.port}/röd%20klänning.png?q=é&x=%20")
    assert heads[0].startswith(b"GET /r%C3%B6d%20kl%C3%A4nning.png?q=%C3%A9&x=%20 HTTP/1.1")
    assert f"Host: xn--bcher-kva.example:{net.port}".encode() in heads[0]


def test_any_private_address_in_the_answer_rejects(serve: Callable[[Handler], int]) -> None:
    net = Net(serve(respond(png_bytes())), {"evil.example": [[PUBLIC, "127.0.0.1"]]})
    with pytest.raises(UnsafeURL, match="non-public"):
        fetcher(net).fetch(f"http://evil.example:{net.port}/a.png")
    assert net.connections == []


def test_dns_rebinding_never_yields_a_loopback_connection(serve: Callable[[Handler], int]) -> None:
    # First answer public, every later answer loopback: resolved once, connection pinned.
    net = Net(serve(respond(png_bytes())), {"rebind.example": [[PUBLIC], ["127.0.0.1"]]})
    fetcher(net).fetch(f"http://rebind.example:{net.port}/a.png")
    assert net.lookups == ["rebind.example"]
    assert net.connections == [PUBLIC]


def test_https_keeps_sni(monkeypatch: pytest.MonkeyPatch, serve: Callable[[Handler], int]) -> None:
    seen: list[str | None] = []

    class Ctx:
        def wrap_socket(
            self, sock: socket.socket, server_hostname: str | None = None
        ) -> socket.socket:
            seen.append(server_hostname)
            raise OSError("stop after recording the handshake target")

    monkeypatch.setattr("fashion_search.fetch.ssl.create_default_context", lambda: Ctx())
    net = Net(serve(respond(png_bytes())), {"images.example": [[PUBLIC]]})
    with pytest.raises(FetchError):
        fetcher(net).fetch(f"https://images.example:{net.port}/a.png")
    assert seen == ["images.example"]
    assert net.connections == [PUBLIC]


def redirect_to(location: str) -> Handler:
    def handler(sock: socket.socket, head: bytes) -> None:
        sock.sendall(
            f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n".encode()
        )

    return handler


def test_redirect_to_private_address_rejected(serve: Callable[[Handler], int]) -> None:
    net = Net(serve(redirect_to("http://169.254.169.254/latest/meta-data/")))
    net.answers = {"images.example": [[PUBLIC]]}
    with pytest.raises(UnsafeURL):
        fetcher(net).fetch(f"http://images.example:{net.port}/a.png")
    assert net.connections == [PUBLIC]


def test_redirect_hop_to_name_resolving_private_rejected(serve: Callable[[Handler], int]) -> None:
    port: list[int] = []

    def handler(sock: socket.socket, head: bytes) -> None:
        redirect_to(f"http://internal.example:{port[0]}/x")(sock, head)

    net = Net(serve(handler), {"images.example": [[PUBLIC]], "internal.example": [["10.1.2.3"]]})
    port.append(net.port)
    with pytest.raises(UnsafeURL):
        fetcher(net).fetch(f"http://images.example:{net.port}/a.png")
    assert net.lookups == ["images.example", "internal.example"]
    assert net.connections == [PUBLIC]


def test_redirects_capped_at_three(serve: Callable[[Handler], int]) -> None:
    image = png_bytes()
    hops: list[bytes] = []

    def handler(sock: socket.socket, head: bytes) -> None:
        hops.append(head)
        n = int(head.split(b" ")[1].strip(b"/") or b"0")
        if n < limit:
            redirect_to(f"/{n + 1}")(sock, head)
        else:
            respond(image)(sock, head)

    net = Net(serve(handler), {"images.example": [[PUBLIC]]})
    limit = 3
    assert fetcher(net).fetch(f"http://images.example:{net.port}/0") == image
    limit = 4
    with pytest.raises(FetchError, match="more than 3 redirects"):
        fetcher(net).fetch(f"http://images.example:{net.port}/0")


def test_declared_length_over_cap_refused(serve: Callable[[Handler], int]) -> None:
    net = Net(serve(respond(png_bytes() + b"\0" * 5000)), {"images.example": [[PUBLIC]]})
    with pytest.raises(PayloadTooLarge):
        fetcher(net).fetch(f"http://images.example:{net.port}/a.png", max_bytes=1000)


def test_body_over_cap_aborted_mid_stream_when_length_lies(
    serve: Callable[[Handler], int],
) -> None:
    sent: list[int] = []

    def handler(sock: socket.socket, head: bytes) -> None:
        # No Content-Length (read-until-close): only the stream tells the size.
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n\r\n")
        sock.sendall(png_bytes())
        for _ in range(2000):  # 64 MB if nobody stopped reading
            sock.sendall(b"\0" * 32768)
            sent.append(32768)

    net = Net(serve(handler), {"images.example": [[PUBLIC]]})
    with pytest.raises(PayloadTooLarge):
        fetcher(net).fetch(f"http://images.example:{net.port}/a.png", max_bytes=100_000)
    assert sum(sent) < 32 * 1024 * 1024


def test_one_byte_per_second_hits_read_timeout(serve: Callable[[Handler], int]) -> None:
    stop = threading.Event()

    def handler(sock: socket.socket, head: bytes) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n\r\n")
        for byte in png_bytes():
            if stop.wait(1.0):
                return
            sock.sendall(bytes([byte]))

    net = Net(serve(handler), {"images.example": [[PUBLIC]]})
    try:
        with pytest.raises(FetchError, match="timed out"):
            fetcher(net, read_timeout_s=0.3).fetch(f"http://images.example:{net.port}/a.png")
    finally:
        stop.set()


def test_dribbling_server_hits_total_deadline(serve: Callable[[Handler], int]) -> None:
    stop = threading.Event()

    def handler(sock: socket.socket, head: bytes) -> None:
        # Every byte arrives well inside the read timeout, even in the headers.
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
            if stop.wait(0.05):
                return
            sock.sendall(bytes([byte]))

    net = Net(serve(handler), {"images.example": [[PUBLIC]]})
    started = time.monotonic()
    try:
        with pytest.raises(FetchError, match="timed out"):
            fetcher(net, read_timeout_s=1.0, total_timeout_s=0.6).fetch(
                f"http://images.example:{net.port}/a.png"
            )
    finally:
        stop.set()
    assert time.monotonic() - started < 30  # returned at all (the server would go on ~50 s)


def test_html_served_as_jpeg_rejected(serve: Callable[[Handler], int]) -> None:
    html = b"<!doctype html><html><body>not an image</body></html>"
    net = Net(serve(respond(html, ctype="image/jpeg")), {"images.example": [[PUBLIC]]})
    with pytest.raises(FetchError, match="supported image"):
        fetcher(net).fetch(f"http://images.example:{net.port}/a.jpg")


def test_http_error_status_is_a_fetch_error(serve: Callable[[Handler], int]) -> None:
    def handler(sock: socket.socket, head: bytes) -> None:
        sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    net = Net(serve(handler), {"images.example": [[PUBLIC]]})
    with pytest.raises(FetchError, match="404"):
        fetcher(net).fetch(f"http://images.example:{net.port}/a.png")


def test_unresolvable_host_is_a_fetch_error() -> None:
    net = Net(0, {})
    with pytest.raises(FetchError, match="cannot resolve"):
        fetcher(net).fetch("http://nowhere.example/a.png")
