"""SupportedAppProtocol on the charger: which protocol this session runs.

The car lists what it speaks with priorities (1 the highest); the charger takes the car's
most preferred entry that it offers (``SECCConfig.protocols``) and that the connection allows:

- ISO 15118-20 only over TLS 1.3 (TLS is mandatory in -20), unless ``SECCConfig.require_tls``
  is off;
- ISO 15118-2 over TLS 1.2 or plain TCP (TLS is mandatory for Plug & Charge only, so a plain
  connection offers EIM alone);
- DIN SPEC 70121 over plain TCP (it has no TLS profile).

The table of the chosen protocol takes over from the next message (``SECCSession.use``). The
response's SchemaID is the car's for that entry; a minor version other than the charger's gives
OK_SuccessfulNegotiationWithMinorDeviation; nothing acceptable gives Failed_NoNegotiation.
"""

from __future__ import annotations

from iso15118.messages import APP, SERVICE_AC, SERVICE_AC_BPT, SERVICE_DC, SERVICE_DC_BPT
from iso15118.protocols import BY_NAMESPACE, NS_ISO20_DC, AppProtocol

from .context import Reply, State

# what each transport may carry: 'tls' is TLS of a version the caller did not say (in-memory pairs)
TRANSPORTS = {"iso20": ("tls", "tls1.3"), "iso2": ("tcp", "tls", "tls1.2"), "din": ("tcp",)}


def kinds_offered(config) -> set[str]:
    """DC and/or AC, from the -20 services the charger is configured with (its power stage)."""
    out = set()
    if {SERVICE_DC, SERVICE_DC_BPT} & set(config.services):
        out.add("DC")
    if {SERVICE_AC, SERVICE_AC_BPT} & set(config.services):
        out.add("AC")
    return out


def allowed(protocol: AppProtocol, namespace: str, s) -> str | None:
    """The energy transfer kind this session would run under ``protocol`` ('' when the
    protocol decides it later, -2 at ChargeParameterDiscovery), or None if not allowed here."""
    if protocol.name not in s.config.protocols:
        return None
    if s.transport not in TRANSPORTS[protocol.name] and not (protocol.name == "iso20" and not s.config.require_tls):
        return None
    kinds = kinds_offered(s.config) & set(protocol.kinds)
    if protocol.name == "iso20":
        kind = "DC" if namespace == NS_ISO20_DC else "AC"
        return kind if kind in kinds else None
    if not kinds:
        return None
    return "DC" if protocol.name == "din" else ""


def supported_app_protocol(req, s, now) -> Reply:
    for p in sorted(req.AppProtocol, key=lambda p: p.Priority):
        protocol = BY_NAMESPACE.get(p.ProtocolNamespace)
        if protocol is None or p.VersionNumberMajor != protocol.major:
            continue
        kind = allowed(protocol, p.ProtocolNamespace, s)
        if kind is None:
            continue
        s.use(protocol)
        s.ctx.kind = kind
        code = "OK_SuccessfulNegotiation" if p.VersionNumberMinor == protocol.minor else \
            "OK_SuccessfulNegotiationWithMinorDeviation"
        return Reply(APP.supportedAppProtocolRes(ResponseCode=code, SchemaID=p.SchemaID), State.WAIT_SESSION_SETUP)
    return Reply(APP.supportedAppProtocolRes(ResponseCode="Failed_NoNegotiation"), State.ENDED, True)
