"""What the charger's ISO 15118-2 and DIN SPEC 70121 handlers share (``handlers_iso2``,
``pnc_iso2``): the protocol's constants, the EVSE status of a response, the EVSEID in each
protocol's type, and the FAILED response that ends a session, every mandatory field filled."""

from __future__ import annotations

import datetime as dt

from iso15118 import exi
from iso15118.messages import filled
from iso15118.units import pv

from .context import Reply, State
from .events import EndReason

ZERO_SESSION = bytes(8)
SCHEDULE_HORIZON = 86400     # s: a schedule covers 24 h when the car gives no departure time (-2 [V2G2-304])
CHARGE_SERVICE_ID = 1        # the one charge service of ServiceDiscovery
CERTIFICATE_SERVICE_ID = 2   # -2: the certificate service (installation, update)
SA_TUPLE_ID = 1              # the one SAScheduleTuple offered
DC_MODES = ("DC_extended", "DC_core")
AC_MODES = ("AC_three_phase_core", "AC_single_phase_core")
DIN_PMAX_LIMIT = 32767       # DIN's PMax is an xs:short without a multiplier: watts, capped
PROFILE_TOLERANCE = 1.0      # W: rounding between a PhysicalValue PMax and a profile entry
RESUMABLE = ("protocol", "kind", "energy_mode", "phases")


def is_din(s) -> bool:
    return s.protocol.name == "din"


def wall(s, now: float) -> int:
    return int(now + s.clock_offset)


def evse_id(s):
    """-2 EVSEID is a string; DIN's is hexBinary (the same text, as bytes)."""
    return s.config.evse_id.encode()[:32] if is_din(s) else s.config.evse_id


def dc_status(s, code: str = "EVSE_Ready", isolation: str | None = None, notification: str | None = None):
    if notification is None:
        notification = "ReNegotiation" if s.ctx.renegotiate else "None"
    kw = {"EVSEIsolationStatus": isolation} if isolation is not None else {}
    return s.msgs.DC_EVSEStatus(EVSEStatusCode=code, NotificationMaxDelay=0, EVSENotification=notification, **kw)


def ac_status(s, notification: str | None = None):
    if notification is None:
        notification = "ReNegotiation" if s.ctx.renegotiate else "None"
    return s.msgs.AC_EVSEStatus(NotificationMaxDelay=0, EVSENotification=notification, RCD=False)


def status(s, **kw) -> dict:
    """The EVSEStatus choice of a response, by the session's energy transfer."""
    if s.ctx.kind == "AC":
        return {"AC_EVSEStatus": ac_status(s, kw.get("notification"))}
    return {"DC_EVSEStatus": dc_status(s, **kw)}


def _unit(field: str) -> str:
    for key, unit in (("Voltage", "V"), ("Current", "A"), ("Ripple", "A"), ("Tolerance", "A"), ("Power", "W"),
                      ("Energy", "Wh"), ("EAmount", "Wh"), ("Time", "s")):
        if key in field:
            return unit
    return "W"


def failed_response(schema: str, request_name: str, code: str, *, kind: str = "DC", evse_id=None,
                    status_code: str = "EVSE_Shutdown"):
    """The response to ``request_name`` carrying ``code``, every mandatory field filled: physical
    values zero in their unit, the EVSE status saying it stops (EVSENotification StopCharging)."""
    m = exi.messages(schema)
    cls = getattr(m, request_name[:-3] + "Res")
    fields = {f.name: f for f in cls._exi.fields}
    given: dict = {"ResponseCode": code}
    for name, f in fields.items():
        if f.min == 0 and name not in ("DC_EVSEStatus", "AC_EVSEStatus"):
            continue
        if f.cls is m.PhysicalValue:
            given[name] = pv(schema, 0, _unit(name))
        elif name == "EVSEID" and evse_id is not None:
            given[name] = evse_id
    if "DC_EVSEStatus" in fields and (kind == "DC" or "AC_EVSEStatus" not in fields):
        given["DC_EVSEStatus"] = m.DC_EVSEStatus(EVSEStatusCode=status_code, NotificationMaxDelay=0,
                                                 EVSENotification="StopCharging")
    elif "AC_EVSEStatus" in fields:
        extra = {"PowerSwitchClosed": False} if schema == "din" else {}
        given["AC_EVSEStatus"] = m.AC_EVSEStatus(NotificationMaxDelay=0, EVSENotification="StopCharging", RCD=False,
                                                 **extra)
    return filled(cls, **given)


def failure(s, now, request_name: str, code: str, *, reason: str | None = None, end: EndReason | None = None,
          status_code: str = "EVSE_Shutdown") -> Reply:
    return Reply(failed_response(s.protocol.schema, request_name, code, kind=s.ctx.kind or "DC",
                                 evse_id=evse_id(s), status_code=status_code), State.ENDED, True,
                 reason=reason, end=end)


def utc(s, now: float) -> dt.datetime:
    """The wall time of ``now`` (certificate validity)."""
    return dt.datetime.fromtimestamp(now + s.clock_offset, dt.timezone.utc)


def pnc_offered(s) -> bool:
    """Plug & Charge needs TLS and contract roots to check the car's contract against."""
    return not is_din(s) and "PnC" in s.config.auth_methods and s.transport != "tcp" and bool(s.config.contract_roots)


def certificate_service_offered(s, now: float) -> bool:
    """-2 CertificateInstallation/Update: a CSMS the supervisor forwards them to, or the charger's
    own provisioning service."""
    pool = s.config.certificate_service
    return pnc_offered(s) and (s.supervisor.forwards_certificates(now) or pool is not None and pool.offers("iso2"))
