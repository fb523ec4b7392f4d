"""The HTTP client against real servers on 127.0.0.1: good, slow, broken, hostile."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import trustme

from thorn.exceptions import ConnectionFailed, DeliveryTimeout, RecipientRejected
from thorn.listener import ListenerThread, Reply
from thorn.transport.client import SyncClient
from thorn.validators import block_internal_ips, ensure_protocol


@pytest.fixture
def client() -> Iterator[SyncClient]:
    c = SyncClient(max_response_size=1024)
    yield c
    c.close()


def test_post_returns_status_headers_and_body(
    client: SyncClient, receiver: Any
) -> None:
    receiver.route("/x", Reply(status=201, body=b"created", headers={"X-Id": "7"}))
    response = client.post(
        receiver.url("/x?a=1"), b"{}", [("Content-Type", "application/json")]
    )
    assert response.status == 201
    assert response.ok
    assert response.body == b"created"
    assert response.header("x-id") == "7"
    (hook,) = receiver.hooks
    assert hook.path == "/x?a=1"
    assert hook.header("host") == f"127.0.0.1:{receiver.port}"
    assert hook.header("content-length") == "2"


def test_connections_are_kept_alive_between_posts(
    client: SyncClient, receiver: Any
) -> None:
    for _ in range(20):
        assert client.post(receiver.url(), b"x").status == 200
    assert receiver.connections_made == 1


def test_keepalive_off_closes_each_connection(
    client: SyncClient, receiver: Any
) -> None:
    for _ in range(3):
        client.post(receiver.url(), b"x", keepalive=False)
    assert receiver.connections_made == 3


def test_a_connection_the_server_closed_is_replaced(
    client: SyncClient, receiver: Any
) -> None:
    receiver.route("/", Reply(action="close"))
    for _ in range(3):
        assert client.post(receiver.url(), b"x").status == 200
    assert receiver.connections_made == 3


def test_slow_receiver_times_out(client: SyncClient, receiver: Any) -> None:
    receiver.route("/slow", Reply(delay=2.0))
    with pytest.raises(DeliveryTimeout, match=r"within 0\.2s"):
        client.post(receiver.url("/slow"), b"x", timeout=0.2)
    # The client still works afterwards.
    assert client.post(receiver.url("/"), b"x").status == 200


def test_hanging_receiver_times_out(client: SyncClient, receiver: Any) -> None:
    receiver.route("/hang", Reply(action="hang"))
    with pytest.raises(DeliveryTimeout):
        client.post(receiver.url("/hang"), b"x", timeout=0.2)


def test_reset_connection_is_a_connection_failure(
    client: SyncClient, receiver: Any
) -> None:
    receiver.route("/reset", Reply(action="reset"))
    with pytest.raises(ConnectionFailed):
        client.post(receiver.url("/reset"), b"x", keepalive=False)


def test_refused_connection_is_a_connection_failure(client: SyncClient) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionFailed, match="cannot connect"):
        client.post(f"http://127.0.0.1:{port}/", b"x")


def test_huge_body_is_read_only_up_to_the_cap(
    client: SyncClient, receiver: Any
) -> None:
    receiver.route("/huge", Reply(action="stream"))
    response = client.post(receiver.url("/huge"), b"x", timeout=5)
    assert response.status == 200
    assert response.truncated
    assert len(response.body) == 1024
    assert client.post(receiver.url("/"), b"x").status == 200


def test_redirects_are_not_followed(client: SyncClient, receiver: Any) -> None:
    receiver.route(
        "/moved", Reply(status=307, headers={"Location": "http://127.0.0.1:1/"})
    )
    response = client.post(receiver.url("/moved"), b"x")
    assert response.status == 307
    assert [h.path for h in receiver.hooks] == ["/moved"]


def test_retry_after_is_read_in_seconds_and_dates(
    client: SyncClient, receiver: Any
) -> None:
    receiver.route("/a", Reply(status=429, headers={"Retry-After": "7"}))
    receiver.route(
        "/b",
        Reply(status=503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
    )
    assert client.post(receiver.url("/a"), b"").retry_after() == 7.0
    assert client.post(receiver.url("/b"), b"").retry_after() == 0.0


def test_validators_run_on_the_resolved_address(
    client: SyncClient, receiver: Any
) -> None:
    url = receiver.url("/", host="localhost")
    with pytest.raises(RecipientRejected, match=r"localhost|127\.0\.0\.1"):
        client.post(url, b"x", validators=[block_internal_ips()])
    assert receiver.hooks == []
    assert client.post(url, b"x", validators=[ensure_protocol("http")]).status == 200


def test_the_address_that_was_validated_is_the_one_connected_to(receiver: Any) -> None:
    """A resolver that answers differently the second time cannot redirect us."""
    from thorn.transport.resolver import Resolver

    class FlippingResolver(Resolver):
        calls = 0

        async def resolve(self, host: str, port: int) -> Any:
            FlippingResolver.calls += 1
            return await super().resolve(
                "127.0.0.1" if self.calls == 1 else "::1", port
            )

    checked: list[Any] = []

    def record(recipient: Any) -> None:
        checked.append(recipient.addresses)

    c = SyncClient(resolver=FlippingResolver(ttl=0))
    try:
        c.post(receiver.url("/", host="localhost"), b"x", validators=[record])
    finally:
        c.close()
    assert [str(a) for a in checked[0]] == ["127.0.0.1"]
    assert len(receiver.hooks) == 1  # the checked address (the receiver is v4-only)


def test_tls_certificates_are_verified(tmp_path: Any) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with ListenerThread(ssl_context=server_ctx) as tls:
        untrusting = SyncClient()
        trusting = SyncClient(ca_bundle=str(bundle))
        try:
            with pytest.raises(ConnectionFailed, match="not trusted"):
                untrusting.post(tls.url("/", host="localhost"), b"x")
            assert trusting.post(tls.url("/", host="localhost"), b"x").status == 200
            assert trusting.post(tls.url("/", host="127.0.0.1"), b"x").status == 200
        finally:
            untrusting.close()
            trusting.close()
    other = trustme.CA().issue_cert("other.example")
    wrong_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    other.configure_cert(wrong_ctx)
    with ListenerThread(ssl_context=wrong_ctx) as tls:
        c = SyncClient(ca_bundle=str(bundle))
        try:
            with pytest.raises(ConnectionFailed):
                c.post(tls.url("/", host="localhost"), b"x")
        finally:
            c.close()


def test_a_client_works_from_a_thread_with_a_running_loop(receiver: Any) -> None:
    import asyncio

    c = SyncClient()
    result: list[int] = []

    async def inside() -> None:
        result.append(c.post(receiver.url(), b"x").status)

    try:
        asyncio.run(inside())
    finally:
        c.close()
    assert result == [200]


def test_clients_in_many_threads_do_not_interfere(receiver: Any) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        c = SyncClient()
        try:
            for _ in range(20):
                assert c.post(receiver.url(), b"x").status == 200
        except BaseException as exc:
            errors.append(exc)
        finally:
            c.close()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert receiver.listener.count == 80


def test_async_validators_are_awaited(client: SyncClient, receiver: Any) -> None:
    async def refuse(recipient: Any) -> None:
        raise RecipientRejected("not this one")

    with pytest.raises(RecipientRejected, match="not this one"):
        client.post(receiver.url(), b"x", validators=[refuse])
    assert receiver.hooks == []


def test_only_http_and_https_are_posted_to(client: SyncClient) -> None:
    with pytest.raises(RecipientRejected, match="http and https only"):
        client.post("ftp://127.0.0.1/", b"x")


def test_scheme_and_port_are_refused_before_any_dns_lookup(client: SyncClient) -> None:
    from thorn.validators import default_validators

    with pytest.raises(RecipientRejected):
        client.post(
            "http://no-such-host.invalid:8080/", b"x", validators=default_validators()
        )


def test_credentials_in_the_url_do_not_duplicate_an_authorization_header(
    client: SyncClient, receiver: Any
) -> None:
    url = receiver.url("/").replace("http://", "http://u:p@")
    client.post(url, b"x", [("Authorization", "Bearer t")])
    client.post(url, b"x")
    first, second = receiver.hooks
    assert first.header("authorization") == "Bearer t"
    assert second.header("authorization") == "Basic dTpw"
