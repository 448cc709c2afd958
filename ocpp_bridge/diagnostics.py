"""Diagnostics (OCPP 2.1 part 2 N01, N09, N10), sans-I/O: GetLog with the upload through the
station's ``FileTransfer`` and its LogStatusNotifications, and Get/Clear CustomerInformation.

GetLog (TC_N_25, TC_N_26, TC_N_35): Accepted with the file's name, then Uploading and Uploaded —
or, after each failed attempt, UploadFailure and another attempt retryInterval later, 1 + retries
attempts in all. One upload at a time: a GetLog during one is Rejected (v2h does not cancel an
upload, so TC_N_36 does not apply). The files: DiagnosticsLog, the station's state and its last
OCPP frames (time, direction, action); SecurityLog, the security events (part 2 appendix 1) the
station raised, within oldestTimestamp..latestTimestamp. TriggerMessage LogStatusNotification gives
Uploading during an upload, Idle otherwise (TC_F_15, TC_F_16).

CustomerInformation (TC_N_32): what the station holds about an idToken — the running
transaction's token, a Plug & Charge answer it remembers, the messages it set aside after the CSMS
refused them — reported (NotifyCustomerInformation) and/or cleared. v2h keeps no other customer
data (no authorization cache, no local list) and no customerIdentifier (Rejected).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from .times import iso, parse_time
from .files import supported

log = logging.getLogger(__name__)
MAX_RETRIES = 10
MAX_RETRY_INTERVAL = 86400  # s


@dataclass
class _Upload:
    request_id: int
    url: str
    filename: str
    data: bytes
    retries: int
    retry_interval: float
    attempts: int = 0
    next_attempt: float | None = None
    done: bool = False


class Diagnostics:
    """GetLog and CustomerInformation for one station core (the bridge, if any, for the
    customer data of its transaction)."""

    def __init__(self, core):
        self.core = core
        self.bridge = None
        self.upload: _Upload | None = None
        core.handlers.update({"GetLog": self._get_log, "CustomerInformation": self._customer_information})
        core.triggers["LogStatusNotification"] = self._trigger
        core.timers.append(self)

    # --- GetLog ----------------------------------------------------------------------------------------
    def _get_log(self, payload: dict) -> dict:
        core, now = self.core, self.core.now
        if self.upload is not None and not self.upload.done:
            return _rejected("an upload is running (v2h does not cancel one)")
        if core.transfer is None:
            return _rejected("this station has no file transfer")
        params = payload["log"]
        if (why := supported(params["remoteLocation"])) is not None:
            return _rejected(f"remoteLocation: {why}")
        oldest = parse_time(params["oldestTimestamp"]) if "oldestTimestamp" in params else None
        latest = parse_time(params["latestTimestamp"]) if "latestTimestamp" in params else None
        kind = payload["logType"]
        if kind == "SecurityLog":
            data = self._security_log(oldest, latest)
        elif kind == "DiagnosticsLog":
            data = self._diagnostics_log(oldest, latest)
        else:
            return _rejected(f"{kind} is not kept by this station")
        stamp = iso(now).replace(":", "").replace("-", "").replace(".", "")
        filename = f"{core.config.station_id}-{kind}-{stamp}.jsonl"
        retries = min(max(payload.get("retries", 0), 0), MAX_RETRIES)
        interval = min(max(payload.get("retryInterval", 60), 0), MAX_RETRY_INTERVAL)
        self.upload = _Upload(payload["requestId"], params["remoteLocation"], filename, data, retries, interval)
        core.after_response(self._attempt)
        return {"status": "Accepted", "filename": filename}

    def _attempt(self) -> None:
        up = self.upload
        up.attempts += 1
        up.next_attempt = None
        self._notify("Uploading", up.request_id)
        self.core.transfer.upload(up.url, up.filename, up.data, lambda why, now, u=up: self._uploaded(u, why, now))

    def _uploaded(self, up: _Upload, why: str | None, now: float) -> None:
        if up is not self.upload:
            return
        self.core.now = max(self.core.now, now)
        if why is None:
            up.done = True
            self._notify("Uploaded", up.request_id)
            return
        log.warning("log upload %d, attempt %d failed: %s", up.request_id, up.attempts, why)
        self._notify("UploadFailure", up.request_id)
        if up.attempts <= up.retries:
            up.next_attempt = self.core.now + up.retry_interval
            self.core.changed()
        else:
            up.done = True

    def next_deadline(self) -> float | None:
        return self.upload.next_attempt if self.upload is not None else None

    def handle_timer(self, now: float) -> None:
        up = self.upload
        if up is not None and up.next_attempt is not None and now >= up.next_attempt:
            self._attempt()

    def _notify(self, status: str, request_id: int | None) -> None:
        payload = {"status": status, **({"requestId": request_id} if request_id is not None else {})}
        self.core.enqueue("LogStatusNotification", payload, now=self.core.now)

    def _trigger(self, evse: dict | None, now: float) -> str:
        up = self.upload
        payload = {"status": "Uploading", "requestId": up.request_id} if up is not None and not up.done \
            else {"status": "Idle"}
        self.core.after_response(lambda: self.core.request("LogStatusNotification", payload, now=self.core.now,
                                                           while_pending=True))
        return "Accepted"

    # --- the files --------------------------------------------------------------------------------------
    def _security_log(self, oldest: float | None, latest: float | None) -> bytes:
        lines = [e for e in self.core.store.get("security_log", []) if _within(e["timestamp"], oldest, latest)]
        return "".join(json.dumps(e) + "\n" for e in lines).encode()

    def _diagnostics_log(self, oldest: float | None, latest: float | None) -> bytes:
        core = self.core
        state = {"station": core.config.station_id, "generatedAt": iso(core.now), "registration": core.registration,
                 "connectorStatus": {f"{e}/{c}": s for (e, c), s in core.connector_status.items()},
                 "queued": len(core.store), "activeNetworkProfile": core.active_slot}
        lines = [json.dumps(state)]
        for t, direction, name in core.recent:
            if (oldest is None or t >= oldest) and (latest is None or t <= latest):
                lines.append(json.dumps({"time": iso(t), "direction": direction, "name": name}))
        return ("\n".join(lines) + "\n").encode()

    # --- CustomerInformation (N09, N10) ------------------------------------------------------------------
    def _customer_information(self, payload: dict) -> dict:
        if "customerIdentifier" in payload:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnsupportedParam",
                                                         "additionalInfo": "v2h keeps no customerIdentifier"}}
        token = payload.get("idToken")
        if token is None and "customerCertificate" not in payload:
            return {"status": "Invalid", "statusInfo": {"reasonCode": "MissingParam"}}
        request_id, report, clear = payload["requestId"], payload["report"], payload["clear"]
        found = self._customer_data(token) if token is not None else []
        if clear and token is not None:
            self._clear_customer(token)

        def send() -> None:
            if report:
                data = "; ".join(found) if found else "No data about this customer"
            else:
                data = "Cleared" if clear else "No report asked for"
            if report and clear:
                data += " (cleared)"
            self.core.request("NotifyCustomerInformation", {"data": data[:512], "seqNo": 0, "tbc": False,
                                                            "generatedAt": iso(self.core.now),
                                                            "requestId": request_id},
                              now=self.core.now, while_pending=True)
        self.core.after_response(send)
        return {"status": "Accepted"}

    def _customer_data(self, token: dict) -> list[str]:
        out = []
        bridge = self.bridge
        same = _same_token(token)
        if bridge is not None and bridge.authorization is not None and same(bridge.authorization):
            out.append(f"authorizes transaction {bridge.transaction_id or '(not started)'}")
        if bridge is not None and bridge._auth is not None and bridge._auth[0] == token["idToken"]:
            out.append("a Plug & Charge answer of the CSMS is remembered for the running session")
        set_aside = [r for r in self.core.store.get("rejected", []) if _mentions(r["payload"], same)]
        if set_aside:
            out.append(f"{len(set_aside)} message(s) the CSMS refused are kept")
        return out

    def _clear_customer(self, token: dict) -> None:
        same = _same_token(token)
        kept = [r for r in self.core.store.get("rejected", []) if not _mentions(r["payload"], same)]
        self.core.store.set("rejected", kept)
        bridge = self.bridge
        if bridge is not None and bridge._auth is not None and bridge._auth[0] == token["idToken"]:
            bridge._auth = None


def _same_token(token: dict):
    key = (token["idToken"].lower(), token["type"])
    return lambda t: isinstance(t, dict) and (str(t.get("idToken", "")).lower(), t.get("type")) == key


def _mentions(payload: dict, same) -> bool:
    return same(payload.get("idToken"))


def _within(stamp: str, oldest: float | None, latest: float | None) -> bool:
    t = parse_time(stamp)
    return t is not None and (oldest is None or t >= oldest) and (latest is None or t <= latest)


def _rejected(why: str) -> dict:
    return {"status": "Rejected", "statusInfo": {"reasonCode": "UnsupportedRequest", "additionalInfo": why[:512]}}
