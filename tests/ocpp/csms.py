"""A real CSMS for the tests, on the ``ocpp`` package and ``websockets``: subprotocol
``ocpp2.1``, security profiles 1–3 (basic auth, TLS, mutual TLS), one connection per identity,
and a record of every request a station sent (raw frames, so message ids and order are kept)."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus

import websockets
from websockets.asyncio.server import serve
from ocpp.routing import on
from ocpp.v21 import ChargePoint, call_result


@dataclass
class Received:
    station: str
    message_id: str
    action: str
    payload: dict


@dataclass
class CSMS:
    passwords: dict[str, str] = field(default_factory=dict)  # station id → basic-auth password
    ssl_context: ssl.SSLContext | None = None
    require_client_cert: bool = False
    heartbeat_interval: int = 300
    received: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)           # why connections were refused
    connections: dict[str, object] = field(default_factory=dict)
    boot_status: str = "Accepted"
    answer_error_for: set[str] = field(default_factory=set)    # actions answered with CALLERROR
    authorize_status: str = "Accepted"
    allowed_energy_transfer: list[str] | None = None            # in AuthorizeResponse, if set
    changed = None
    opened: int = 0                                             # websocket connections accepted
    auth_headers: list[str] = field(default_factory=list)      # the Authorization header of each upgrade

    async def start(self, host: str = "127.0.0.1", port: int = 0):
        self.changed = asyncio.Condition()
        self.server = await serve(self._handler, host, port, subprotocols=["ocpp2.1"],
                                  process_request=self._check_request, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    def url(self, scheme: str = "ws") -> str:
        return f"{scheme}://127.0.0.1:{self.port}"

    def _check_request(self, connection, request):
        station = request.path.strip("/")
        if station in self.connections:
            self.refused.append(f"{station}: already connected")
            return connection.respond(HTTPStatus.CONFLICT, "identity already connected\n")
        if self.require_client_cert:
            return None  # TLS already verified the station's certificate
        auth = request.headers.get("Authorization", "")
        self.auth_headers.append(auth)
        expected = self.passwords.get(station)
        token = base64.b64encode(f"{station}:{expected}".encode()).decode() if expected else None
        if token is None or auth != f"Basic {token}":
            self.refused.append(f"{station}: bad credentials")
            return connection.respond(HTTPStatus.UNAUTHORIZED, "bad credentials\n")
        return None

    async def _handler(self, ws) -> None:
        station = ws.request.path.strip("/")
        if ws.subprotocol != "ocpp2.1":
            self.refused.append(f"{station}: subprotocol {ws.subprotocol}")
            await ws.close()
            return
        cp = self._handle(station, ws)
        self.connections[station] = cp
        self.opened += 1
        try:
            await cp.start()
        except websockets.exceptions.ConnectionClosed:
            pass
        finally:
            self.connections.pop(station, None)

    def _handle(self, station: str, ws) -> _StationHandle:
        """The handler of one station's connection (a CSMS that answers more makes its own)."""
        return _StationHandle(station, ws, self)

    async def record(self, station: str, frame: list) -> None:
        self.received.append(Received(station, frame[1], frame[2], frame[3]))
        async with self.changed:
            self.changed.notify_all()

    async def wait_for(self, predicate, timeout: float = 30.0) -> None:
        async def waiter():
            async with self.changed:
                await self.changed.wait_for(lambda: predicate(self))
        await asyncio.wait_for(waiter(), timeout)

    async def send_call(self, station: str, action: str, payload: dict, timeout: float = 10.0):
        """A CSMS-initiated request as a raw frame (camelCase payload); the answer frame's kind
        (3 result, 4 error) and payload."""
        return await self.send_raw(station, json.dumps([2, f"csms-{len(self.received)}-{action}", action, payload]),
                                   timeout)

    async def send_raw(self, station: str, text: str, timeout: float = 10.0, unique_id: str | None = None):
        """Send ``text`` as it is; the answer to ``unique_id`` (default: read from the frame,
        "-1" when it cannot be read)."""
        cp = self.connections[station]
        if unique_id is None:
            try:
                unique_id = json.loads(text)[1]
            except (ValueError, IndexError, TypeError, KeyError, RecursionError):
                unique_id = "-1"
        async with cp._call_lock:
            await cp._send(text)
            res = await cp._get_specific_response(unique_id, timeout)
        if res.message_type_id == 3:
            return 3, res.payload
        return 4, {"errorCode": res.error_code, "errorDescription": res.error_description}

    def actions(self, action: str) -> list[Received]:
        return [r for r in self.received if r.action == action]


class _StationHandle(ChargePoint):
    def __init__(self, station: str, ws, csms: CSMS):
        super().__init__(station, ws)
        self.csms = csms

    async def route_message(self, raw_msg):
        frame = json.loads(raw_msg)
        if frame[0] == 2:
            await self.csms.record(self.id, frame)
            if frame[2] in self.csms.answer_error_for:
                await self._send(json.dumps([4, frame[1], "InternalError", "test CSMS refuses", {}]))
                return
        await super().route_message(raw_msg)

    @on("BootNotification")
    def on_boot(self, charging_station, reason, **_):
        return call_result.BootNotification(current_time=_now(), interval=self.csms.heartbeat_interval,
                                            status=self.csms.boot_status)

    @on("Heartbeat")
    def on_heartbeat(self, **_):
        return call_result.Heartbeat(current_time=_now())

    @on("StatusNotification")
    def on_status(self, **_):
        return call_result.StatusNotification()

    @on("TransactionEvent")
    def on_transaction_event(self, **_):
        return call_result.TransactionEvent()

    @on("SecurityEventNotification")
    def on_security_event(self, **_):
        return call_result.SecurityEventNotification()

    @on("MeterValues")
    def on_meter_values(self, **_):
        return call_result.MeterValues()

    @on("Authorize")
    def on_authorize(self, id_token, **_):
        extra = {"allowed_energy_transfer": self.csms.allowed_energy_transfer} \
            if self.csms.allowed_energy_transfer is not None else {}
        return call_result.Authorize(id_token_info={"status": self.csms.authorize_status}, **extra)

    @on("NotifyEVChargingNeeds")
    def on_charging_needs(self, **_):
        return call_result.NotifyEVChargingNeeds(status="Accepted")

    @on("NotifyEVChargingSchedule")
    def on_ev_schedule(self, **_):
        return call_result.NotifyEVChargingSchedule(status="Accepted")

    @on("NotifyReport")
    def on_notify_report(self, **_):
        return call_result.NotifyReport()

    @on("ReportChargingProfiles")
    def on_report_profiles(self, **_):
        return call_result.ReportChargingProfiles()

    @on("FirmwareStatusNotification")
    def on_firmware_status(self, **_):
        return call_result.FirmwareStatusNotification()

    @on("LogStatusNotification")
    def on_log_status(self, **_):
        return call_result.LogStatusNotification()

    @on("NotifyCustomerInformation")
    def on_customer_information(self, **_):
        return call_result.NotifyCustomerInformation()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
