"""Message traces: a readable trace for people, one JSON object per message for machines.

The JSON lines (``--log FILE``) hold one object per V2G message (``time``, ``direction``,
``name``, ``message`` in ``iso15118.exi.to_dict`` form), per OCPP frame (``time``,
``direction``, ``name``, ``ocpp``: the OCPP-J frame), per SDP message (``time``, ``direction``,
``name``, ``sdp``) and per note (``time``, ``note``).

The readable trace is rendered from those same records by ``TraceRenderer`` (pure: records in,
lines out), so the live trace of ``v2h secc``/``evcc``/``charger`` and ``v2h trace show`` of a
log or of a decoded capture read the same:

- ``full``: one line per message, with the codes and quantities people look at; in the charge
  loop the power in kW with its direction (charging/discharging) and the SoC; OCPP lines with
  their key fields (the setpoint and operation mode of a SetChargingProfile and its status, the
  event type and meter values of a TransactionEvent).
- ``short``: one line per state change (a request/response pair of a new kind, a failure, a
  note, the OCPP messages that change something) and a progress line while the same exchange
  repeats (cable check, precharge, the charge loop). On a terminal the progress line is
  rewritten in place.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from typing import IO, NamedTuple

from iso15118 import exi
from iso15118.messages import schema_of_message

MODES = ("short", "full")

_WORDS = ("ResponseCode", "EVSEProcessing", "EVProcessing", "ChargeProgress", "SelectedAuthorizationService",
          "ChargingSession", "SchemaID", "EVSENotification")
_QUANTITIES = (("EVPresentVoltage", "V"), ("EVTargetVoltage", "V"), ("EVSEPresentVoltage", "V"),
               ("EVTargetCurrent", "A"), ("EVSEPresentCurrent", "A"))
_MODE_QUANTITIES = (("EVTargetCurrent", "A"), ("EVTargetVoltage", "V"), ("EVSETargetActivePower", "W"),
                    ("EVSEPresentActivePower", "W"), ("EVPresentActivePower", "W"),
                    ("EVMaximumChargePower", "W"), ("EVMaximumDischargePower", "W"))
# exchanges that repeat while the state does not change: a progress line in the short trace
_LOOPS = ("ChargeLoop", "CurrentDemand", "ChargingStatus")
_IDLE_W = 1.0  # below this the power is shown as idle

# OCPP messages the short trace leaves out: periodic, or answers that carry nothing new
_OCPP_QUIET = {"Heartbeat", "HeartbeatResponse", "StatusNotificationResponse", "TransactionEventResponse",
               "NotifyEVChargingNeedsResponse", "SecurityEventNotificationResponse", "MeterValues",
               "MeterValuesResponse"}
_MEASURANDS = {"Energy.Active.Import.Register": "imported", "Energy.Active.Export.Register": "exported",
               "Power.Active.Import": "power in", "Power.Active.Export": "power out", "SoC": "SoC"}


class Line(NamedTuple):
    """One line of the readable trace: ``kind`` 'line' (stays) or 'progress' (replaced by the
    next progress line on a terminal); ``time`` the record's Unix time, if it had one."""

    kind: str
    text: str
    time: float | None = None


def iso_time(epoch: float) -> str:
    """Unix time as the logs write it: UTC, milliseconds, 'Z'."""
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_iso = iso_time  # the name other modules used


def parse_time(text: str) -> float:
    """A log's ``time`` (ISO 8601; 'Z' or an offset; naive means UTC) as Unix time.
    ValueError when it is not one."""
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.timestamp()


def physical(value) -> float | None:
    """A quantity of a message in dict form: -20 RationalNumber (Value × 10^Exponent) or -2/DIN
    PhysicalValue (Value × 10^Multiplier); None for anything else."""
    if not isinstance(value, dict) or not isinstance(value.get("Value"), (int, float)):
        return None
    exp = value.get("Exponent", value.get("Multiplier"))
    if not isinstance(exp, int):
        return None
    return value["Value"] * 10.0 ** exp


def body_of(name: str, message) -> dict:
    """The message's own fields: ``{name: {...}}`` for -20 and SupportedAppProtocol, the body
    element of a -2/DIN ``V2G_Message``."""
    if not isinstance(message, dict):
        return {}
    if name in message and isinstance(message[name], dict):
        return message[name]
    v2g = message.get("V2G_Message")
    if isinstance(v2g, dict):
        b = v2g.get("Body")
        if isinstance(b, dict) and isinstance(b.get(name), dict):
            return b[name]
    inner = next(iter(message.values()), None) if len(message) == 1 else None
    return inner if isinstance(inner, dict) else {}


def _num(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".") if abs(x) < 1000 else f"{x:.0f}"


def power_phrase(watts: float) -> str:
    """'charging 7.00 kW', 'discharging 7.00 kW', 'idle'."""
    if abs(watts) < _IDLE_W:
        return "idle 0.00 kW"
    return f"{'charging' if watts > 0 else 'discharging'} {abs(watts) / 1000:.2f} kW"


def _control_mode(body: dict) -> tuple[str | None, dict]:
    for key, value in body.items():
        if key.endswith("ControlMode") and isinstance(value, dict):
            return key.split("_CL")[0].split("_SE")[0].split("_EVPPT")[0], value
    return None, {}


def soc_of(body: dict) -> float | None:
    """The car's state of charge in a message: -20 DisplayParameters.PresentSOC, -2/DIN
    DC_EVStatus.EVRESSSOC."""
    for holder, key in (("DisplayParameters", "PresentSOC"), ("DC_EVStatus", "EVRESSSOC")):
        h = body.get(holder)
        if isinstance(h, dict) and isinstance(h.get(key), (int, float)):
            return float(h[key])
    return None


def loop_power(request: dict, response: dict) -> tuple[float, str] | None:
    """The power of one charge loop (W, negative = out of the car) and how it is known: the
    charger's present voltage × current (DC), its present or target active power (AC), else
    the car's present active power."""
    v, i = physical(response.get("EVSEPresentVoltage")), physical(response.get("EVSEPresentCurrent"))
    if v is not None and i is not None:
        return v * i, f"{_num(v)} V × {_num(i)} A"
    _, mode = _control_mode(response)
    for key, how in (("EVSEPresentActivePower", "present"), ("EVSETargetActivePower", "target")):
        p = physical(mode.get(key))
        if p is not None:
            return p, how
    _, mode = _control_mode(request)
    p = physical(mode.get("EVPresentActivePower"))
    if p is not None:
        return p, "the car's present power"
    return None


def describe_body(body: dict) -> str:
    """A short summary of a message in dict form: its codes and the quantities people look at."""
    parts = []
    for f in _WORDS:
        v = body.get(f)
        if v is not None and not isinstance(v, (dict, list)):
            parts.append(f"{f}={v}")
    for f, unit in _QUANTITIES:
        v = physical(body.get(f))
        if v is not None:
            parts.append(f"{f}={_num(v)} {unit}")
    mode_name, mode = _control_mode(body)
    if mode_name:
        parts.append(mode_name)
        for f, unit in _MODE_QUANTITIES:
            v = physical(mode.get(f))
            if v is not None:
                parts.append(f"{f}={_num(v / 1000) + ' kW' if unit == 'W' else _num(v) + ' ' + unit}")
    soc = soc_of(body)
    if soc is not None:
        parts.append(f"SoC {soc:.1f} %")
    return " ".join(parts)


def _base(name: str) -> str:
    return name[:-3] if name.endswith(("Req", "Res")) else name


def _is_loop(base: str) -> bool:
    return any(base.endswith(x) for x in _LOOPS)


class TraceRenderer:
    """Records in, readable lines out (pure: no clock, no I/O). One renderer follows one
    session's stream of records (it pairs requests with responses and remembers the loop's
    power); ``who`` labels the lines ('SECC', 'EVCC'; empty for none)."""

    def __init__(self, who: str = "", mode: str = "full", *, verbose: bool = False):
        if mode not in MODES:
            raise ValueError(f"trace mode {mode!r}: want one of {', '.join(MODES)}")
        self.who = who
        self.mode = mode
        self.verbose = verbose
        self._requests: dict[str, dict] = {}   # base name → the last request's body
        self._extra: dict[str, str] = {}        # base name → what the request's line added (PowerDelivery)
        self._last_base: str | None = None
        self._repeats = 0
        self._loops = 0
        self._channel: str | None = None       # BPT_ChannelSelection of the last PowerDelivery Start
        self._flow: str | None = None          # 'charging'/'discharging' seen in the loop since then

    # --- records ------------------------------------------------------------------------------------
    def record(self, rec: dict) -> list[Line]:
        """One JSON-lines record of any kind (message, OCPP frame, SDP, note, or unknown)."""
        try:
            epoch = parse_time(rec["time"]) if isinstance(rec.get("time"), str) else None
        except ValueError:
            epoch = None
        if "note" in rec:
            return self.note(epoch, str(rec["note"]))
        if "message" in rec and isinstance(rec.get("name"), str):
            return self.message(epoch, str(rec.get("direction", "")), rec["name"], rec["message"])
        if "ocpp" in rec:
            return self.ocpp(epoch, str(rec.get("direction", "")), str(rec.get("name", "?")), rec["ocpp"])
        if "sdp" in rec:
            return self.sdp(epoch, str(rec.get("direction", "")), str(rec.get("name", "SDP")), rec["sdp"])
        rest = {k: v for k, v in rec.items() if k != "time"}
        return [Line("line", self._prefix(epoch) + json.dumps(rest, ensure_ascii=False)[:300], epoch)]

    def note(self, epoch: float | None, text: str) -> list[Line]:
        return [Line("line", self._prefix(epoch) + text, epoch)]

    def message(self, epoch: float | None, direction: str, name: str, message) -> list[Line]:
        body = body_of(name, message)
        base = _base(name)
        out: list[Line] = []
        is_request, is_response = name.endswith("Req"), name.endswith("Res")
        extra = ""
        if is_request:
            self._requests[base] = body
            if base == "SessionSetup":  # a new session: its loops count from one
                self._loops, self._flow, self._channel = 0, None, None
            if base == "PowerDelivery":
                extra = self._extra[base] = self._power_delivery(body)
        loop_text = None
        if is_response and _is_loop(base):
            self._loops += 1
            loop_text = self._loop(base, self._requests.get(base, {}), body, epoch, out)
        if self.mode == "full":
            detail = describe_body(body)
            if loop_text:
                detail = f"{detail} │ {loop_text}" if detail else loop_text
            if extra:
                detail = f"{detail} {extra}".strip()
            out.insert(0, Line("line", f"{self._prefix(epoch)}{_arrow(direction)} {name} {detail}".rstrip(), epoch))
            return out
        # short: one line per new exchange, failures always, a progress line while one repeats
        if not is_response:
            return out
        code = str(body.get("ResponseCode", ""))
        failed = code.startswith("FAILED")
        request = self._requests.get(base, {})
        if loop_text is not None:
            text = f"{base} #{self._loops}: {loop_text}"
        else:
            words = [str(request[w]) for w in ("SelectedAuthorizationService", "ChargeProgress",
                                              "ChargingSession") if isinstance(request.get(w), str)]
            if base == "PowerDelivery" and self._extra.get(base):
                words.append(self._extra.pop(base))
            words += [str(body[w]) for w in ("ResponseCode", "EVSEProcessing") if isinstance(body.get(w), str)]
            v = physical(body.get("EVSEPresentVoltage"))
            target = physical(request.get("EVTargetVoltage"))
            if v is not None:
                words.append(f"{_num(v)} V" + (f" of {_num(target)} V" if target is not None else ""))
            text = f"{base}: {' '.join(words)}".rstrip(": ")
        repeat = base == self._last_base and not failed
        self._repeats = self._repeats + 1 if repeat else 1
        self._last_base = base
        if repeat:
            if loop_text is None:
                text = f"{text} (×{self._repeats})"
            out.append(Line("progress", self._prefix(epoch) + text, epoch))
        else:
            out.insert(0, Line("line", self._prefix(epoch) + text, epoch))
        return out

    def _power_delivery(self, body: dict) -> str:
        progress = body.get("ChargeProgress")
        ready = body.get("ReadyToChargeState")  # DIN 70121
        din = f"ReadyToChargeState={ready}" if isinstance(ready, bool) else ""
        if din:
            progress = "Start" if ready else "Stop"
        if progress == "Start":
            self._channel = body.get("BPT_ChannelSelection") if isinstance(body.get("BPT_ChannelSelection"),
                                                                              str) else None
            self._flow = None
            self._loops = 0
            return din or (f"BPT_ChannelSelection={self._channel}" if self._channel else "")
        if progress == "Stop" and self._flow:
            return f"{din} (after {self._flow})".strip()
        return din

    def _loop(self, base: str, request: dict, response: dict, epoch: float | None, out: list[Line]) -> str:
        parts = []
        power = loop_power(request, response)
        if power is not None:
            watts, how = power
            parts.append(f"{power_phrase(watts)} ({how})")
            flow = None if abs(watts) < _IDLE_W else ("charging" if watts > 0 else "discharging")
            if flow and flow != self._flow:
                selected = {"Charge": "charging", "Discharge": "discharging"}.get(self._channel or "")
                if selected and selected != flow:
                    out.append(Line("line", f"{self._prefix(epoch)}power flows {'into' if flow == 'charging' else 'out of'}"
                                    f" the car ({flow}); the car selected channel {self._channel} at PowerDelivery, "
                                    "the charger's target decides the direction", epoch))
                self._flow = flow
        soc = soc_of(request)
        if soc is not None:
            parts.append(f"SoC {soc:.1f} %")
        return ", ".join(parts)

    def ocpp(self, epoch: float | None, direction: str, name: str, frame) -> list[Line]:
        payload = _ocpp_payload(frame)
        if self.mode == "short" and (name in _OCPP_QUIET or (name == "TransactionEvent"
                                                            and payload.get("eventType") == "Updated")):
            return []
        detail = ocpp_summary(name, frame)
        if self.verbose:
            detail = f"{detail} {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}".strip()
        return [Line("line", f"{self._stamp(epoch)}OCPP {_arrow(direction)} {name} {detail}".rstrip(), epoch)]

    def sdp(self, epoch: float | None, direction: str, name: str, fields) -> list[Line]:
        detail = " ".join(f"{k}={v}" for k, v in fields.items()) if isinstance(fields, dict) else str(fields)
        return [Line("line", f"{self._prefix(epoch)}{_arrow(direction)} {name} {detail}".rstrip(), epoch)]

    # --- formatting -----------------------------------------------------------------------------------
    def _stamp(self, epoch: float | None) -> str:
        return f"{iso_time(epoch)[11:23]} " if epoch is not None else ""

    def _prefix(self, epoch: float | None) -> str:
        return self._stamp(epoch) + (f"{self.who} " if self.who else "")


def _arrow(direction: str) -> str:
    return {"tx": "→", "rx": "←"}.get(direction, "·")


def _ocpp_payload(frame) -> dict:
    if isinstance(frame, list) and frame:
        if frame[0] == 2 and len(frame) >= 4 and isinstance(frame[3], dict):
            return frame[3]
        if frame[0] == 3 and len(frame) >= 3 and isinstance(frame[2], dict):
            return frame[2]
    return {}


def ocpp_summary(name: str, frame) -> str:
    """The key fields of an OCPP-J frame, readably."""
    if isinstance(frame, list) and frame and frame[0] == 4:
        code = frame[2] if len(frame) > 2 else "?"
        desc = frame[3] if len(frame) > 3 else ""
        return f"CALLERROR {code}{': ' + str(desc) if desc else ''}"
    p = _ocpp_payload(frame)
    if name == "SetChargingProfile":
        return _charging_profile(p)
    if name == "TransactionEvent":
        info = p.get("transactionInfo") if isinstance(p.get("transactionInfo"), dict) else {}
        parts = [str(p.get("eventType", "?")), f"({p.get('triggerReason', '?')})"]
        if info.get("chargingState"):
            parts.append(str(info["chargingState"]))
        if info.get("stoppedReason"):
            parts.append(f"stopped: {info['stoppedReason']}")
        if p.get("offline"):
            parts.append("offline")
        meter = _meter_values(p.get("meterValue"))
        if meter:
            parts.append(meter)
        return " ".join(parts)
    if name == "NotifyEVChargingNeeds":
        needs = p.get("chargingNeeds") if isinstance(p.get("chargingNeeds"), dict) else {}
        return " ".join(f"{k}={needs[k]}" for k in ("requestedEnergyTransfer", "controlMode") if k in needs)
    if name == "StatusNotification":
        return str(p.get("connectorStatus", ""))
    parts = []
    for key in ("status", "eventType", "type", "reason", "requestedMessage"):
        if isinstance(p.get(key), str):
            parts.append(p[key])
    info = p.get("statusInfo")
    if isinstance(info, dict) and info.get("reasonCode"):
        parts.append(f"({info['reasonCode']}{': ' + str(info['additionalInfo']) if info.get('additionalInfo') else ''})")
    if "interval" in p and name == "BootNotificationResponse":
        parts.append(f"heartbeat every {p['interval']} s")
    return " ".join(parts)


def _charging_profile(p: dict) -> str:
    prof = p.get("chargingProfile") if isinstance(p.get("chargingProfile"), dict) else {}
    head = f"evse {p.get('evseId', '?')} profile {prof.get('id', '?')} {prof.get('chargingProfilePurpose', '')}"
    schedules = prof.get("chargingSchedule") if isinstance(prof.get("chargingSchedule"), list) else []
    parts = [head.rstrip()]
    for sched in schedules[:1]:
        if not isinstance(sched, dict):
            continue
        unit = sched.get("chargingRateUnit", "W")
        periods = sched.get("chargingSchedulePeriod") if isinstance(sched.get("chargingSchedulePeriod"), list) else []
        for period in periods[:3]:
            if not isinstance(period, dict):
                continue
            bits = [f"from {period.get('startPeriod', 0)} s:", str(period.get("operationMode", "ChargingOnly"))]
            sp = period.get("setpoint")
            if isinstance(sp, (int, float)):
                bits.append(f"setpoint {power_phrase(sp) if unit == 'W' else f'{sp:g} A'}")
            for key, label in (("limit", "limit"), ("dischargeLimit", "discharge limit")):
                v = period.get(key)
                if isinstance(v, (int, float)):
                    bits.append(f"{label} {abs(v) / 1000:.2f} kW" if unit == "W" else f"{label} {v:g} A")
            parts.append(" ".join(bits))
        if len(periods) > 3:
            parts.append(f"(+{len(periods) - 3} periods)")
    return ", ".join(parts)


def _meter_values(values) -> str:
    if not isinstance(values, list) or not values:
        return ""
    last = values[-1] if isinstance(values[-1], dict) else {}
    out = []
    power_in = power_out = None
    for sv in last.get("sampledValue", []) if isinstance(last.get("sampledValue"), list) else []:
        if not isinstance(sv, dict) or not isinstance(sv.get("value"), (int, float)):
            continue
        measurand = sv.get("measurand", "Energy.Active.Import.Register")
        unit = (sv.get("unitOfMeasure") or {}).get("unit", "Wh" if measurand.startswith("Energy") else "")
        v = sv["value"]
        if measurand == "Power.Active.Import":
            power_in = v
        elif measurand == "Power.Active.Export":
            power_out = v
        elif measurand.startswith("Energy") and unit == "Wh":
            out.append(f"{_MEASURANDS.get(measurand, measurand)} {v / 1000:.3f} kWh")
        elif measurand == "SoC":
            out.append(f"SoC {v:.1f} %")
        else:
            out.append(f"{_MEASURANDS.get(measurand, measurand)} {v:g} {unit}".rstrip())
    if power_in is not None or power_out is not None:
        out.insert(0, power_phrase((power_in or 0.0) - (power_out or 0.0)))
    return ", ".join(out)


class TraceWriter:
    """Writes rendered lines to a stream: on a terminal (``tty``) a progress line is rewritten
    in place; elsewhere progress lines are written at most every ``every`` seconds of the
    records' time (and the last one before the next line)."""

    def __init__(self, stream: IO[str], *, tty: bool = False, every: float = 5.0):
        self.stream = stream
        self.tty = tty
        self.every = every
        self._open = False                        # a progress line on the terminal without its newline
        self._pending: Line | None = None         # a progress line not yet written (not a terminal)
        self._last_written: float | None = None

    def write(self, lines: list[Line]) -> None:
        for line in lines:
            if line.kind == "progress":
                self._progress(line)
            else:
                self._end_progress()
                self.stream.write(line.text + "\n")
        self.stream.flush()

    def _progress(self, line: Line) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + line.text)
            self._open = True
            return
        t = line.time
        if self._last_written is None or t is None or t - self._last_written >= self.every:
            self.stream.write(line.text + "\n")
            self._last_written = t
            self._pending = None
        else:
            self._pending = line

    def _end_progress(self) -> None:
        if self._open:
            self.stream.write("\n")
            self._open = False
        if self._pending is not None:
            self.stream.write(self._pending.text + "\n")
            self._pending = None
        self._last_written = None

    def close(self) -> None:
        self._end_progress()
        self.stream.flush()


class MessageLog:
    """An ``Observer`` for sessions: the readable trace on ``stream`` (``mode`` 'full' or
    'short'; ``tty``: the stream is a terminal) and JSON lines appended to ``path``.
    ``clock_offset`` turns the session clock into Unix time."""

    def __init__(self, who: str, *, path: str | None = None, stream: IO[str] | None = None,
                 clock_offset: float | None = None, mode: str = "full", tty: bool = False, verbose: bool = False):
        self.who = who
        self.stream = stream
        self.clock_offset = clock_offset
        self.renderer = TraceRenderer(who, mode, verbose=verbose)
        self.ocpp_renderer = TraceRenderer("", mode, verbose=verbose)
        self.writer = TraceWriter(stream, tty=tty) if stream is not None else None
        self.file = open(path, "a", buffering=1, encoding="utf-8") if path else None  # line-buffered

    def __call__(self, now: float, direction: str, name: str, message) -> None:
        if self.writer is None and self.file is None:
            return
        epoch = now + self.clock_offset if self.clock_offset is not None else time.time()
        doc = _to_dict(message)
        if self.writer is not None:
            self.writer.write(self.renderer.message(epoch, direction, name, doc))
        if self.file is not None:
            rec = {"time": iso_time(epoch), "direction": direction, "name": name, "message": doc}
            self.file.write(json.dumps(rec, ensure_ascii=False) + "\n")

    def note(self, text: str, who: str | None = None) -> None:
        """A line of context (connection, session end): in the readable trace (labelled ``who``,
        by default this log's), and in the JSON lines as ``{"time": ..., "note": text}``."""
        epoch = time.time()
        if self.writer is not None:
            renderer = self.renderer if who is None else TraceRenderer(who, self.renderer.mode)
            self.writer.write(renderer.note(epoch, text))
        if self.file is not None:
            self.file.write(json.dumps({"time": iso_time(epoch), "note": text}, ensure_ascii=False) + "\n")

    def handler(self, level: int = logging.INFO) -> logging.Handler:
        """A logging handler that notes each record here (the listener's refused handshakes,
        accept errors), so that they land in the same log as the sessions."""
        return _NoteHandler(self, level)

    def ocpp(self, direction: str, name: str, frame) -> None:
        """An OCPP-J frame: ``{"time", "direction", "name": action, "ocpp": frame}``."""
        epoch = time.time()
        if self.writer is not None:
            self.writer.write(self.ocpp_renderer.ocpp(epoch, direction, name, frame))
        if self.file is not None:
            self.file.write(json.dumps({"time": iso_time(epoch), "direction": direction, "name": name, "ocpp": frame},
                                       ensure_ascii=False) + "\n")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.file is not None:
            self.file.close()
            self.file = None


def _to_dict(message) -> dict:
    """A message in ``to_dict`` form; -20 classes shared by several schemas take the message's."""
    schema = exi.schema_of(message)
    return exi.to_dict(message, schema or schema_of_message(message))


class _NoteHandler(logging.Handler):
    def __init__(self, log: MessageLog, level: int):
        super().__init__(level)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        self.log.note(record.getMessage())
