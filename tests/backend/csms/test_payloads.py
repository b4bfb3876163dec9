"""The ocpp library's message dataclasses as payloads: the JSON the library itself would send."""

from __future__ import annotations

import dataclasses
import inspect
from types import ModuleType
from typing import Any

import pytest
from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16 import datatypes as types16
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201 import datatypes as types201

from backend.csms.payloads import as_payload, json_keys

NOW = "2025-03-01T06:00:00.000Z"


def library_payload(message: object) -> Any:
    """What ``ocpp.charge_point.ChargePoint`` sends for ``message``: its own three steps."""
    return snake_to_camel_case(remove_nones(serialize_as_dict(message)))


def classes_without_required_fields(*modules: ModuleType) -> list[Any]:
    return [
        cls
        for module in modules
        for _, cls in inspect.getmembers(module, dataclasses.is_dataclass)
        if cls.__module__ == module.__name__
        and all(f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
                for f in dataclasses.fields(cls))
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("message", "previous_dict"),
    [
        (result16.BootNotification(current_time=NOW, interval=300, status="Accepted"),
         {"currentTime": NOW, "interval": 300, "status": "Accepted"}),
        (result16.BootNotification(current_time=NOW, interval=17, status="Pending"),
         {"currentTime": NOW, "interval": 17, "status": "Pending"}),
        (result201.BootNotification(current_time=NOW, interval=60, status="Accepted"),
         {"currentTime": NOW, "interval": 60, "status": "Accepted"}),
        (result16.Heartbeat(current_time=NOW), {"currentTime": NOW}),
        (result16.MeterValues(), {}),
        (result16.Authorize(id_tag_info=types16.IdTagInfo(status="Blocked")), {"idTagInfo": {"status": "Blocked"}}),
        (result201.Authorize(id_token_info=types201.IdTokenInfoType(status="Accepted")),
         {"idTokenInfo": {"status": "Accepted"}}),
        (result16.StartTransaction(transaction_id=7, id_tag_info=types16.IdTagInfo(status="Accepted")),
         {"transactionId": 7, "idTagInfo": {"status": "Accepted"}}),
        (result16.StopTransaction(), {}),
        (result16.StopTransaction(id_tag_info=types16.IdTagInfo(status="Invalid")),
         {"idTagInfo": {"status": "Invalid"}}),
        (result201.TransactionEvent(), {}),
        (result201.TransactionEvent(id_token_info=types201.IdTokenInfoType(status="Invalid")),
         {"idTokenInfo": {"status": "Invalid"}}),
        (result16.DataTransfer(status="UnknownVendorId"), {"status": "UnknownVendorId"}),
    ],
)  # fmt: skip
def test_a_reply_from_a_call_result_dataclass_is_the_dict_the_session_used_to_build(
    message: object, previous_dict: dict[str, Any]
) -> None:
    assert as_payload(message) == previous_dict == library_payload(message)


@pytest.mark.parametrize(
    "message",
    [
        call16.SetChargingProfile(
            connector_id=1,
            cs_charging_profiles=types16.ChargingProfile(
                charging_profile_id=3,
                stack_level=0,
                charging_profile_purpose="TxDefaultProfile",
                charging_profile_kind="Absolute",
                charging_schedule=types16.ChargingSchedule(
                    charging_rate_unit="W",
                    charging_schedule_period=[
                        types16.ChargingSchedulePeriod(start_period=0, limit=11000.0),
                        types16.ChargingSchedulePeriod(start_period=600, limit=7400.0, number_phases=3),
                    ],
                ),
            ),
        ),
        call16.ChangeConfiguration(key="HeartbeatInterval", value="60"),
        call201.SetNetworkProfile(
            configuration_slot=1,
            connection_data=types201.NetworkConnectionProfileType(
                ocpp_version="OCPP20",
                ocpp_transport="JSON",
                ocpp_csms_url="wss://csms.example/ocpp",
                message_timeout=30,
                security_profile=1,
                ocpp_interface="Wired0",
            ),
        ),
        result201.Heartbeat(current_time=NOW, custom_data={"vendor_id": "com.acme", "note": None}),
        result201.BootNotification(
            current_time=NOW,
            interval=60,
            status="Rejected",
            status_info=types201.StatusInfoType(reason_code="Maintenance", additional_info=None),
        ),
    ],
    ids=lambda message: type(message).__name__,
)
def test_nested_lists_odd_spellings_and_custom_data_come_out_as_the_library_sends_them(message: object) -> None:
    assert as_payload(message) == library_payload(message)


@pytest.mark.parametrize(
    "cls",
    classes_without_required_fields(call16, result16, call201, result201),
    ids=lambda cls: f"{cls.__module__.split('.')[1]}.{cls.__module__.split('.')[2]}.{cls.__name__}",
)
def test_every_message_with_only_optional_fields_comes_out_as_the_library_sends_it(cls: type) -> None:
    assert as_payload(cls()) == library_payload(cls()) == {}


def test_keys_are_spelled_by_the_library_once_per_class() -> None:
    assert json_keys(types201.NetworkConnectionProfileType)[2] == ("ocpp_csms_url", "ocppCsmsUrl")
    assert json_keys(result16.StartTransaction) is json_keys(result16.StartTransaction)


def test_only_a_dataclass_instance_is_a_message() -> None:
    with pytest.raises(TypeError, match="ocpp message dataclass"):
        as_payload({"currentTime": NOW})
    with pytest.raises(TypeError, match="ocpp message dataclass"):
        as_payload(result16.Heartbeat)
