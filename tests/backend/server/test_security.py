"""OCPP security profiles over real sockets: Basic auth (profile 1), TLS (profile 2), unknown identities.

Every refusal must come before the websocket handshake, as an HTTP status the charger
logs; the TLS test generates a throw-away self-signed certificate for ``127.0.0.1``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import ipaddress
import shutil
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from backend.bus import InMemoryBus
from backend.csms import CsmsConfig
from backend.server import OcppServer
from backend.server.ocpp_server import parse_credentials
from backend.store import open_store

PASSWORDS = {"CP-1": "s3cret-password-1", "CP-2": "other-password-22"}


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def serve(tmp_path: Path, scenario: Callable[[OcppServer], Awaitable[None]], **options: object) -> None:
    """Run ``scenario`` against a server on port 0 built with ``options``."""

    async def main() -> None:
        store = open_store(tmp_path / "csms.db")
        bus = InMemoryBus(history=100)
        server = OcppServer(store, bus, **options)  # type: ignore[arg-type]
        await server.start("127.0.0.1", 0)
        try:
            await asyncio.wait_for(scenario(server), timeout=10)
        finally:
            await server.stop()
            await bus.close()
            store.close()

    asyncio.run(main())


async def boot_status(url: str, charger_id: str, **connect_options: object) -> str:
    """Connect as an ``ocpp`` 1.6 charger, boot, and return the answer's status."""
    async with connect(url, subprotocols=["ocpp1.6"], **connect_options) as ws:  # type: ignore[arg-type,list-item]
        cp = ChargePoint16(charger_id, ws, response_timeout=5)
        task = asyncio.create_task(cp.start())
        try:
            boot = await cp.call(call16.BootNotification(charge_point_model="DC150", charge_point_vendor="ACME"))
            return str(boot.status)
        finally:
            await ws.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await task


async def refused(url: str, **connect_options: object) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as info:
        await connect(url, subprotocols=["ocpp1.6"], **connect_options)  # type: ignore[arg-type,list-item]
    return info.value


def test_basic_auth_admits_the_right_password_and_refuses_a_missing_or_wrong_one(tmp_path: Path) -> None:
    async def scenario(server: OcppServer) -> None:
        url = f"ws://127.0.0.1:{server.port}/ocpp/CP-1"
        assert await boot_status(url, "CP-1", additional_headers=basic("CP-1", PASSWORDS["CP-1"])) == "Accepted"
        missing = await refused(url)
        assert missing.response.status_code == 401
        assert missing.response.headers["WWW-Authenticate"].startswith("Basic")
        for headers in (
            basic("CP-1", "wrong"),
            basic("CP-2", PASSWORDS["CP-2"]),  # another charger's valid pair
            basic("CP-1", PASSWORDS["CP-1"] + "x"),
            {"Authorization": "Basic not-base64!"},
            {"Authorization": "Bearer " + PASSWORDS["CP-1"]},
        ):
            assert (await refused(url, additional_headers=headers)).response.status_code == 401
        unlisted = f"ws://127.0.0.1:{server.port}/ocpp/CP-9"
        assert (await refused(unlisted, additional_headers=basic("CP-9", "any"))).response.status_code == 401
        assert server.connected_chargers() == []

    serve(tmp_path, scenario, credentials=PASSWORDS)


def test_unknown_identities_are_refused_with_403_when_configured(tmp_path: Path) -> None:
    config = CsmsConfig(known_chargers=frozenset({"CP-1"}))

    async def scenario(server: OcppServer) -> None:
        base = f"ws://127.0.0.1:{server.port}/ocpp"
        assert await boot_status(f"{base}/CP-1", "CP-1") == "Accepted"
        stranger = await refused(f"{base}/CP-X")
        assert stranger.response.status_code == 403
        assert b"CP-X" in stranger.response.body

    serve(tmp_path, scenario, config=config, refuse_unknown=True)


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1, from ``cryptography`` or else the openssl command."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither the cryptography package nor the openssl command is available to make a certificate")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
            + ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
            check=True,
            capture_output=True,
        )
        return cert, key
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert, key


def test_tls_with_basic_auth_serves_wss_to_a_charger_trusting_the_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))

    async def scenario(server: OcppServer) -> None:
        assert server.scheme == "wss"
        url = f"wss://127.0.0.1:{server.port}/ocpp/CP-2"
        auth = basic("CP-2", PASSWORDS["CP-2"])
        assert await boot_status(url, "CP-2", ssl=client_context, additional_headers=auth) == "Accepted"
        assert (await refused(url, ssl=client_context)).response.status_code == 401
        # A charger that does not trust the certificate never gets to the handshake.
        with pytest.raises(ssl.SSLCertVerificationError):
            await connect(url, ssl=ssl.create_default_context(), subprotocols=["ocpp1.6"])  # type: ignore[list-item]

    serve(tmp_path, scenario, credentials=PASSWORDS, ssl_context=server_context)


def test_credentials_are_read_from_json_or_id_password_lines_and_mistakes_are_named() -> None:
    assert parse_credentials('{"CP-1": "pw-1", "CP-2": "pw:2"}') == {"CP-1": "pw-1", "CP-2": "pw:2"}
    assert parse_credentials("# depot A\nCP-1:pw-1\n\nCP-2 : pw:2\r\n") == {"CP-1": "pw-1", "CP-2": "pw:2"}
    for text, message in (
        ("CP-1:pw\nno-colon\n", "line 2"),
        ("CP-1:pw\nCP-1:again\n", "listed twice"),
        ('{"CP-1": 7}', "password"),
        ("{not json", "JSON"),
        ("# only a comment\n", "no charge point"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_credentials(text)
