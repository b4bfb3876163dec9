"""The HTTP API over an SQLite store in tmp_path: reads, filters, auth, problems, commands.

Most tests go through FastAPI's in-process TestClient; one starts :class:`ApiServer` on a
real socket (127.0.0.1, port 0) in the test's event loop. The store is filled through
its own API, the way the OCPP sessions fill it.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.ocpp.framing import OcppVersion, PayloadTypeError
from backend.server.api import ApiServer, create_app
from backend.store import (
    ChargerRecord,
    ConnectorRecord,
    Direction,
    MessageLogEntry,
    MeterValue,
    Store,
    open_store,
)

with warnings.catch_warnings():
    # Starlette 1.x nudges towards its httpx fork; FastAPI's TestClient still works with httpx.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

T0 = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)
REGISTER = "Energy.Active.Import.Register"
PROBLEM = "application/problem+json"
TOKEN = "s3cret-token"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A depot: CP-1 (1.6, online) with a stopped and a running transaction, CP-2 (2.0.1, offline)."""
    store = open_store(tmp_path / "api.db")
    store.upsert_charger(
        ChargerRecord(
            charger_id="CP-1",
            ocpp_version="ocpp1.6",
            vendor="Acme",
            model="DC150",
            firmware="1.2.3",
            boot_status="Accepted",
            registered_at=T0,
            last_seen=T0,
        )
    )
    store.set_online("CP-1", True, T0 + timedelta(hours=3))
    store.upsert_charger(
        ChargerRecord(
            charger_id="CP-2", ocpp_version="ocpp2.0.1", vendor="Volt", model="AC22", registered_at=T0, last_seen=T0
        )
    )
    store.upsert_connector_status(
        ConnectorRecord(charger_id="CP-1", connector_id=1, status="Charging", updated_at=T0 + timedelta(hours=2))
    )
    store.upsert_connector_status(ConnectorRecord(charger_id="CP-1", connector_id=2, status="Available", updated_at=T0))

    stopped, _ = store.start_transaction("CP-1", 2, "TAG-A", 1000.0, T0)
    store.stop_transaction("CP-1", stopped.tx_id, 5000.0, T0 + timedelta(hours=1), "Local")
    running, _ = store.start_transaction("CP-1", 1, "TAG-B", 5000.0, T0 + timedelta(hours=2))
    store.add_meter_values(
        [
            _register("CP-1", 1, running.tx_id, T0 + timedelta(hours=2, minutes=10), 5200.0),
            _register("CP-1", 1, running.tx_id, T0 + timedelta(hours=2, minutes=20), 5800.0),
            # A per-phase register counts one phase only: not the transaction's energy.
            _register("CP-1", 1, running.tx_id, T0 + timedelta(hours=2, minutes=30), 9999.0, phase="L1"),
        ]
    )
    # A 2.0.1 transaction whose start reading is unknown, metered in kWh.
    store.open_transaction_event("CP-2", "tx-201", 1, T0 + timedelta(hours=4))
    store.add_meter_values(
        [
            _register("CP-2", 1, "tx-201", T0 + timedelta(hours=4), 10.0, unit="kWh"),
            _register("CP-2", 1, "tx-201", T0 + timedelta(hours=5), 10.5, unit="kWh"),
        ]
    )
    for i, (charger_id, action) in enumerate(
        [("CP-1", "BootNotification"), ("CP-1", "Heartbeat"), ("CP-2", "BootNotification"), ("CP-1", "Heartbeat")]
    ):
        store.log_message(
            MessageLogEntry(
                charger_id=charger_id,
                direction=Direction.IN,
                at=T0 + timedelta(minutes=i),
                message_type=2,
                message_id=f"m{i}",
                action=action,
                payload=f'[2,"m{i}","{action}",{{}}]',
            )
        )
    yield store
    store.close()


def _register(
    charger_id: str,
    connector_id: int,
    tx_id: str,
    at: datetime,
    value: float,
    unit: str = "Wh",
    phase: str | None = None,
) -> MeterValue:
    return MeterValue(
        charger_id=charger_id,
        connector_id=connector_id,
        tx_id=tx_id,
        at=at,
        measurand=REGISTER,
        value=value,
        unit=unit,
        phase=phase,
    )


def client(store: Store, server: Any | None = None, token: str | None = None) -> TestClient:
    return TestClient(create_app(store, server, token))


def assert_problem(response: httpx.Response, status: int, type_suffix: str | None = None) -> dict[str, Any]:
    """The response is an RFC 9457 problem with ``status``; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["instance"] == response.request.url.path
    assert {"type", "title", "detail"} <= body.keys()
    if type_suffix is not None:
        assert body["type"].endswith(type_suffix)
    return body


class Connected:
    """An OCPP server stand-in without ``call``: it only knows who is connected."""

    def __init__(self, *charger_ids: str) -> None:
        self.charger_ids = charger_ids

    def connected_chargers(self) -> list[str]:
        return sorted(self.charger_ids)


class Calling(Connected):
    """An OCPP server stand-in whose ``call`` answers, raises or records as told."""

    def __init__(self, *charger_ids: str, answer: Any = None, error: Exception | None = None) -> None:
        super().__init__(*charger_ids)
        self.answer, self.error = answer, error
        self.calls: list[tuple[str, str, dict[str, Any], float | None]] = []

    async def call(self, charger_id: str, action: str, payload: dict[str, Any], timeout: float | None = None) -> Any:
        self.calls.append((charger_id, action, payload, timeout))
        if self.error is not None:
            raise self.error
        return self.answer


class OcppCallError(Exception):
    """Shaped like the server's and the ``ocpp`` library's errors: the wire code as ``code``."""

    def __init__(self, code: str, description: str = "") -> None:
        super().__init__(f"{code}: {description}")
        self.code, self.description = code, description


# -- chargers ------------------------------------------------------------------------------


def test_chargers_are_listed_with_version_last_seen_and_the_stores_online_flag(store: Store) -> None:
    chargers = client(store).get("/chargers").json()

    assert [(c["charger_id"], c["ocpp_version"], c["online"]) for c in chargers] == [
        ("CP-1", "ocpp1.6", True),
        ("CP-2", "ocpp2.0.1", False),
    ]
    assert datetime.fromisoformat(chargers[0]["last_seen"]) == T0 + timedelta(hours=3)


def test_online_comes_from_the_live_server_when_there_is_one(store: Store) -> None:
    chargers = client(store, Connected("CP-2")).get("/chargers").json()

    assert {c["charger_id"]: c["online"] for c in chargers} == {"CP-1": False, "CP-2": True}


def test_charger_detail_has_connectors_and_open_transactions(store: Store) -> None:
    detail = client(store).get("/chargers/CP-1").json()

    assert [(c["connector_id"], c["status"]) for c in detail["connectors"]] == [(1, "Charging"), (2, "Available")]
    assert [(t["connector_id"], t["energy_wh"]) for t in detail["open_transactions"]] == [(1, 800.0)]
    assert detail["firmware"] == "1.2.3"


def test_unknown_charger_is_a_404_problem(store: Store) -> None:
    body = assert_problem(client(store).get("/chargers/nope"), 404, "charger-not-found")

    assert "nope" in body["detail"]


def test_unknown_path_is_a_404_problem(store: Store) -> None:
    assert_problem(client(store).get("/no/such/path"), 404)


# -- transactions ------------------------------------------------------------------------


def test_transactions_carry_energy_by_stop_reading_or_latest_register(store: Store) -> None:
    txs = client(store).get("/transactions").json()

    assert [(t["charger_id"], t["open"], t["energy_wh"]) for t in txs] == [
        ("CP-1", False, 4000.0),  # meter stop - meter start
        ("CP-1", True, 800.0),  # latest whole-connector register - meter start
        ("CP-2", True, 500.0),  # kWh readings; no start reading, so from the first one
    ]


def test_transactions_filter_by_charger_and_open_or_closed(store: Store) -> None:
    api = client(store)

    assert {t["charger_id"] for t in api.get("/transactions", params={"charger_id": "CP-2"}).json()} == {"CP-2"}
    assert [t["id_tag"] for t in api.get("/transactions", params={"open": "false"}).json()] == ["TAG-A"]
    assert len(api.get("/transactions", params={"open": "true", "charger_id": "CP-1"}).json()) == 1


def test_transactions_filter_by_start_time_window(store: Store) -> None:
    params = {"since": (T0 + timedelta(hours=1)).isoformat(), "until": (T0 + timedelta(hours=3)).isoformat()}

    txs = client(store).get("/transactions", params=params).json()

    assert [t["id_tag"] for t in txs] == ["TAG-B"]


def test_a_time_without_offset_is_a_422_problem_listing_the_field(store: Store) -> None:
    body = assert_problem(client(store).get("/transactions", params={"since": "2025-03-01T06:00"}), 422)

    assert body["errors"][0]["location"] == ["query", "since"]


def test_transaction_detail_has_its_meter_values(store: Store) -> None:
    api = client(store)
    tx_id = api.get("/transactions", params={"open": "true", "charger_id": "CP-1"}).json()[0]["tx_id"]

    detail = api.get(f"/transactions/CP-1/{tx_id}").json()

    assert [v["value"] for v in detail["meter_values"]] == [5200.0, 5800.0, 9999.0]
    assert detail["energy_wh"] == 800.0


def test_unknown_transaction_is_a_404_problem(store: Store) -> None:
    assert_problem(client(store).get("/transactions/CP-1/999"), 404, "transaction-not-found")


# -- message log ---------------------------------------------------------------------------


def test_messages_filter_by_charger_and_action_newest_first(store: Store) -> None:
    messages = client(store).get("/messages", params={"charger_id": "CP-1", "action": "Heartbeat"}).json()

    assert [m["message_id"] for m in messages] == ["m3", "m1"]
    assert messages[0]["frame"] == '[2,"m3","Heartbeat",{}]'
    assert messages[0]["direction"] == "in"


def test_messages_limit_and_time_window(store: Store) -> None:
    api = client(store)

    assert [m["message_id"] for m in api.get("/messages", params={"limit": 2}).json()] == ["m3", "m2"]
    window = {"since": (T0 + timedelta(minutes=1)).isoformat(), "until": (T0 + timedelta(minutes=3)).isoformat()}
    assert [m["message_id"] for m in api.get("/messages", params=window).json()] == ["m2", "m1"]
    assert_problem(api.get("/messages", params={"limit": 0}), 422)


# -- auth, OpenAPI, site -------------------------------------------------------------------


def test_with_a_token_set_requests_without_it_are_refused_with_a_401_problem(store: Store) -> None:
    api = client(store, token=TOKEN)

    missing = api.get("/chargers")
    wrong = api.get("/chargers", headers={"Authorization": "Bearer not-it"})

    assert_problem(missing, 401, "unauthorized")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert_problem(wrong, 401, "unauthorized")
    assert "invalid_token" in wrong.headers["www-authenticate"]
    assert api.get("/chargers", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_health_and_openapi_stay_open_with_a_token_set(store: Store) -> None:
    api = client(store, token=TOKEN)

    assert api.get("/health").json() == {"status": "ok"}
    assert api.get("/openapi.json").status_code == 200


def test_openapi_document_lists_every_path_and_problem_responses(store: Store) -> None:
    document = client(store, token=TOKEN).get("/openapi.json").json()

    assert set(document["paths"]) >= {
        "/health",
        "/chargers",
        "/chargers/{charger_id}",
        "/chargers/{charger_id}/commands/{action}",
        "/transactions",
        "/transactions/{charger_id}/{tx_id}",
        "/messages",
        "/site",
    }
    not_found = document["paths"]["/chargers/{charger_id}"]["get"]["responses"]["404"]
    assert PROBLEM in not_found["content"]
    assert "ProblemDetails" in document["components"]["schemas"]
    assert "HTTPBearer" in document["components"]["securitySchemes"]


def test_site_is_not_implemented_yet_and_says_so(store: Store) -> None:
    body = assert_problem(client(store).get("/site"), 501, "not-implemented")

    assert body["detail"] == "not implemented yet: smart charging site model"


# -- commands --------------------------------------------------------------------------------


def test_command_is_501_while_the_server_cannot_call_chargers(store: Store) -> None:
    for server in (None, Connected("CP-1")):
        assert_problem(client(store, server).post("/chargers/CP-1/commands/Reset", json={}), 501, "not-implemented")


def test_command_to_a_charger_not_connected_is_a_409_problem(store: Store) -> None:
    server = Calling("CP-2", answer={"status": "Accepted"})

    assert_problem(client(store, server).post("/chargers/CP-1/commands/Reset", json={}), 409, "not-connected")
    assert server.calls == []


def test_command_to_an_unknown_charger_is_a_404_problem(store: Store) -> None:
    assert_problem(client(store, Calling()).post("/chargers/nope/commands/Reset", json={}), 404)


def test_command_returns_the_chargers_answer(store: Store) -> None:
    server = Calling("CP-1", answer={"status": "Accepted"})

    response = client(store, server).post("/chargers/CP-1/commands/Reset", params={"timeout": 5}, json={"type": "Soft"})

    assert response.status_code == 200, response.text
    assert response.json() == {"charger_id": "CP-1", "action": "Reset", "response": {"status": "Accepted"}}
    assert server.calls == [("CP-1", "Reset", {"type": "Soft"}, 5.0)]


def test_command_callerror_is_a_502_problem_with_the_ocpp_code(store: Store) -> None:
    server = Calling("CP-1", error=OcppCallError("NotSupported", "Reset is not supported"))

    body = assert_problem(client(store, server).post("/chargers/CP-1/commands/Reset", json={}), 502, "call-error")

    assert body["ocpp_error_code"] == "NotSupported"


def test_command_timeout_is_a_504_problem(store: Store) -> None:
    server = Calling("CP-1", error=TimeoutError())

    assert_problem(client(store, server).post("/chargers/CP-1/commands/Reset", json={}), 504, "timeout")


@pytest.mark.parametrize(
    ("error", "status", "type_suffix"),
    [
        (OcppCallError("Timeout", "no answer within 5 s"), 504, "charger-timeout"),
        (OcppCallError("NotConnected", "no OCPP connection"), 409, "charger-not-connected"),
        (ConnectionResetError(), 409, "charger-not-connected"),
        (OcppCallError("ConnectionClosed", "code 1006"), 502, "charger-connection-lost"),
        (PayloadTypeError("type must be a string", version=OcppVersion.V16), 422, "validation-error"),
    ],
)
def test_command_errors_are_recognised_by_their_shape(
    store: Store, error: Exception, status: int, type_suffix: str
) -> None:
    server = Calling("CP-1", error=error)

    assert_problem(client(store, server).post("/chargers/CP-1/commands/Reset", json={}), status, type_suffix)


def test_command_error_without_a_known_shape_is_a_500_problem(store: Store) -> None:
    api = TestClient(create_app(store, Calling("CP-1", error=RuntimeError("bug"))), raise_server_exceptions=False)

    assert_problem(api.post("/chargers/CP-1/commands/Reset", json={}), 500)


def test_command_with_a_non_object_body_is_a_422_problem(store: Store) -> None:
    api = client(store, Calling("CP-1", answer={}))

    assert_problem(api.post("/chargers/CP-1/commands/Reset", json=[1, 2]), 422)
    assert_problem(api.post("/chargers/CP-1/commands/not-an-action", json={}), 422)


# -- a real socket -------------------------------------------------------------------------------


def test_api_server_serves_on_a_real_socket_in_the_callers_loop_and_stops_cleanly(store: Store) -> None:
    async def main() -> None:
        async with asyncio.timeout(10):
            api = ApiServer(create_app(store, token=TOKEN), "127.0.0.1", 0)
            await api.start()
            try:
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.port}") as http:
                    health = await http.get("/health")
                    refused = await http.get("/chargers")
            finally:
                await api.stop()
        assert health.json() == {"status": "ok"}
        assert refused.status_code == 401
        assert asyncio.all_tasks() == {asyncio.current_task()}

    asyncio.run(main())


def test_api_server_refuses_a_port_in_use(store: Store) -> None:
    async def main() -> None:
        first = ApiServer(create_app(store), "127.0.0.1", 0)
        await first.start()
        try:
            with pytest.raises(OSError, match="in use"):
                await ApiServer(create_app(store), "127.0.0.1", first.port).start()
        finally:
            await first.stop()

    asyncio.run(asyncio.wait_for(main(), timeout=10))
