"""What the simulated car's session is made of, whatever the protocol: its configuration and
timers, its states, its errors and its result. Shared by the handlers (``handlers`` for -20,
``handlers_iso2`` for ISO 15118-2 and DIN 70121), the tables (``iso20``, ``iso2``, ``din``) and the
session (``session``), which import it and not each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


CONTROL_MODES = {"scheduled": 1, "dynamic": 2}


@dataclass
class EVTimers:
    """EV-side timeouts, seconds (the standards' values; docs/sessions.md gives their clauses)."""

    message: float = 2.0
    service_detail: float = 5.0         # -20 ServiceDetail; -2 ServiceDetail, PaymentDetails, PowerDelivery,
                                        # CertificateInstallation and CertificateUpdate
    charge_loop: float = 0.5            # -20 AC/DC_ChargeLoop
    current_demand: float = 0.25        # -2 and DIN CurrentDemand
    ongoing: float = 60.0
    cable_check: float = 40.0
    precharge: float = 10.0             # -20
    precharge_iso2: float = 7.0         # -2 and DIN
    communication_setup: float = 20.0


@dataclass
class EVCCConfig:
    """What the car asks for and how it ends the session."""

    service: str = "DC_BPT"                 # DC_BPT | AC_BPT | DC | AC (-2 and DIN: charging only)
    protocols: tuple[str, ...] = ("iso20",)  # offered in SupportedAppProtocol, priority 1 first: iso20 | iso2 | din
    control_mode: str = "dynamic"           # scheduled | dynamic
    auth: str = "eim"                       # eim | pnc
    loops: int = 10                         # charge-loop iterations before a clean stop
    loop_period: float = 0.25
    poll_interval: float = 0.1              # between repetitions of an Ongoing request
    evcc_id: str = "0200000000A1"
    end: str = "Terminate"                  # after the loops: Terminate | Pause | ServiceRenegotiation (-20)
    renegotiate_after: int = 0              # -2: PowerDelivery(Renegotiate) once after this many loops (0: never)
    renegotiate_to: str | None = None       # service after a ServiceRenegotiation
    resume_session_id: bytes | None = None  # resume a paused session
    channel: str = "auto"                   # BPT_ChannelSelection: Charge | Discharge | auto
    departure_in: int = 8 * 3600            # seconds until the driver leaves
    contract_chain: tuple[bytes, ...] = ()  # DER, leaf first (Plug & Charge; -20 and -2 use their own PKI)
    contract_key: object = None
    emaid: str = ""                         # -2 PaymentDetails (default: the contract certificate's CN)
    # Plug & Charge without a contract (-20, -2): CertificateInstallation with the OEM provisioning
    # certificate (DER chain, leaf first) and key; the V2G roots that vouch for the provisioning
    # service's signature; contract_update: -2 CertificateUpdate of the contract the car has
    oem_chain: tuple[bytes, ...] = ()
    oem_key: object = None
    v2g_roots: tuple[bytes, ...] = ()
    contract_update: bool = False
    install_contract: bool = False          # install a contract even when the car has one (a new one wanted)
    timers: EVTimers = field(default_factory=EVTimers)
    time_scale: float = 1.0                 # simulated seconds per second for the battery (an accelerated demo)


class EVState(Enum):
    INIT = "Init"
    WAITING = "WaitingForResponse"
    SCHEDULED_SEND = "ScheduledSend"
    DONE = "Done"
    FAILED = "Failed"


class EVCCError(Exception):
    """The session could not go on (the reason is the message)."""


@dataclass
class EVCCResult:
    ok: bool = False
    reason: str = ""
    session_id: bytes = b""
    loops: int = 0
    charged_wh: float = 0.0     # energy into the battery's inlet
    discharged_wh: float = 0.0  # energy out of the inlet (to the house)
    channel: str = ""
    connection: str = ""        # negotiated transport, e.g. 'TLSv1.3 TLS_AES_256_GCM_SHA384 secp521r1'
    protocol: str = ""          # what SupportedAppProtocol chose: iso20 | iso2 | din
    contract: str = ""          # 'installed' or 'updated' (-2) when the session brought a new contract
    # the new contract (DER chain, leaf first, and its private key) once validated: what the car
    # keeps for its next sessions (an installation cut short leaves these empty)
    contract_chain: tuple[bytes, ...] = ()
    contract_key: object = None
