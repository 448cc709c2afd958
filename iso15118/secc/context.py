"""What a charger's session is made of, whatever the protocol: its states, its configuration,
what it has negotiated so far, and a handler's reply. Shared by the handlers (``handlers`` for
ISO 15118-20, ``handlers_iso2`` for ISO 15118-2 and DIN SPEC 70121), the state tables (``iso20``,
``iso2``, ``din``) and the session (``session``), which import it and not each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from iso15118.pki.pool import CertificateService, ContractPool

from .events import EndReason, GeneratorMode


class State(Enum):
    WAIT_SAP = "WaitSupportedAppProtocol"
    WAIT_SESSION_SETUP = "WaitSessionSetup"
    WAIT_AUTH_SETUP = "WaitAuthorizationSetup"
    WAIT_AUTH = "WaitAuthorization"
    WAIT_SERVICE_DISCOVERY = "WaitServiceDiscovery"
    WAIT_SERVICE_SELECTION = "WaitServiceSelection"
    WAIT_PAYMENT_DETAILS = "WaitPaymentDetails"            # -2 Plug & Charge (certificates, contract)
    WAIT_CPD = "WaitChargeParameterDiscovery"
    WAIT_SCHEDULE = "WaitScheduleExchange"
    WAIT_CABLE_CHECK = "WaitCableCheck"
    WAIT_PRECHARGE = "WaitPreCharge"
    WAIT_POWER_DELIVERY = "WaitPowerDelivery"
    CHARGE_LOOP = "ChargeLoop"
    WAIT_METERING_RECEIPT = "WaitMeteringReceipt"          # -2: a loop response asked for a receipt
    WAIT_WELDING = "WaitWeldingDetectionOrSessionStop"
    WAIT_SESSION_STOP = "WaitSessionStop"
    ENDED = "Ended"


PROTOCOLS = ("iso20", "iso2", "din")


@dataclass
class SECCConfig:
    """What this charger offers and how long it waits (the timers of the standards, and v2h's own)."""

    evse_id: str = "DE*V2H*E0001"
    # the protocols offered in SupportedAppProtocol (the car's priorities choose among them)
    protocols: tuple[str, ...] = PROTOCOLS
    services: tuple[int, ...] = (2, 6, 1, 5)  # DC, DC_BPT, AC, AC_BPT; filtered by the handshake
    control_modes: tuple[int, ...] = (1, 2)    # 1 Scheduled, 2 Dynamic
    auth_methods: tuple[str, ...] = ("EIM", "PnC")
    require_tls: bool = True                   # ISO 15118-20 only over TLS
    contract_roots: tuple = ()                 # MO roots (PEM/DER) for Plug & Charge
    sequence_timeout: float = 60.0
    # the car's communication setup timer (connection → SessionSetupRes): no car waits longer,
    # so a connection that has not set up a session by then is closed
    communication_setup_timeout: float = 20.0
    energized_timeout: float = 2.0             # v2h: silence while power flows (not in the standard)
    ongoing_timeout: float = 60.0
    cable_check_timeout: float = 40.0
    precharge_timeout: float = 10.0
    meter_id: str = "V2H-METER-1"
    pause_allowed: bool = True
    max_paused_sessions: int = 16              # paused sessions kept for resumption (oldest dropped)
    # DC: PowerDelivery(Start) is refused unless the output is within this many volts of the
    # car's present voltage (closing the car's contactors across a larger difference is an inrush)
    precharge_tolerance: float = 20.0
    # ServiceDetail of the BPT services: how the charger's inverter runs while it discharges (-20
    # GeneratorMode: 1 GridFollowing, 2 GridForming — a charger that can form an island for the house)
    # and, for AC_BPT, its GridCodeIslandingDetectionMethod (1 Active, 2 Passive)
    generator_mode: GeneratorMode = GeneratorMode.GRID_FOLLOWING
    islanding_detection_method: int = 1
    # a time-of-use tariff published to the car as a PriceLevelSchedule (ServiceDetail Pricing=2):
    # (duration in s, price level) from the schedule's start; empty = no pricing (Pricing=0)
    price_levels: tuple[tuple[int, int], ...] = ()

    # ISO 15118-2 Plug & Charge: ask for a MeteringReceipt every this many loop responses (0: never)
    receipt_interval: int = 20
    # CertificateInstallation (-20, -2) and -2 CertificateUpdate answered by the charger itself, as
    # a provisioning service would (a test backend: ``ContractPool``; a ``CertificateService`` is one
    # profile's pool) when no supervisor forwards them to a CSMS (None: not offered)
    certificate_service: ContractPool | CertificateService | None = None
    # a contract whose revocation status cannot be learnt (no OCSP answer): 'accept' or 'reject'
    contract_status_unknown: str = "accept"

    def __post_init__(self) -> None:
        if isinstance(self.certificate_service, CertificateService):
            self.certificate_service = ContractPool.of(self.certificate_service)
        if self.contract_status_unknown not in ("accept", "reject"):
            raise ValueError(f"contract_status_unknown is accept or reject, not {self.contract_status_unknown!r}")
        bad = [p for p in self.protocols if p not in PROTOCOLS]
        if bad or not self.protocols:
            raise ValueError(f"protocols are {', '.join(PROTOCOLS)}; got {self.protocols!r}")
        if self.receipt_interval < 0:
            raise ValueError("receipt_interval must not be negative")
        if self.islanding_detection_method not in (1, 2):
            raise ValueError("GridCodeIslandingDetectionMethod is 1 (active) or 2 (passive)")
        if self.max_paused_sessions < 1:
            raise ValueError("max_paused_sessions must be at least 1")
        if not self.precharge_tolerance > 0:
            raise ValueError("the precharge tolerance must be a positive number of volts")
        if len(self.price_levels) > 1024:
            raise ValueError("a PriceLevelSchedule holds at most 1024 entries")
        for duration, level in self.price_levels:
            if not (0 < duration < 2**32 and 0 <= level < 256):
                raise ValueError(f"price level entry ({duration} s, level {level}) out of range "
                                 "(duration 1..2^32-1 s, level 0..255)")


@dataclass
class SessionContext:
    """Everything negotiated so far."""

    session_id: bytes = b""
    protocol: str = ""                  # 'iso20' | 'iso2' | 'din', from the handshake
    kind: str = ""                      # 'DC' or 'AC': from the handshake (-20, DIN), ChargeParameterDiscovery (-2)
    evcc_id: str = ""
    resumed: bool = False
    auth_methods: tuple[str, ...] = ()
    gen_challenge: bytes | None = None  # single use
    auth_method: str = ""
    emaid: str = ""
    contract_chain: tuple[bytes, ...] = ()  # -20 PnC: the validated contract chain (DER, leaf first)
    contract_checked: bool = False          # ... and its revocation status known and acceptable
    authorized: bool = False
    ongoing_since: float | None = None
    service_id: int = 0
    parameter_set_id: int = 0
    control_mode: str = ""              # 'Scheduled' | 'Dynamic'
    bpt: bool = False
    ev: dict = field(default_factory=dict)  # the car's limits and needs, in SI units
    precharge_done: bool = False
    ev_voltage: float | None = None     # DC: the car's latest EVPresentVoltage (PreCharge, ChargeLoop)
    channel: str = "Charge"
    energized: bool = False
    loops: int = 0
    ev_soc: float | None = None
    ev_min_soc: float | None = None
    reported_power: float = 0.0         # the power last reported upward (PowerChanged)
    # ISO 15118-2 and DIN 70121
    energy_mode: str = ""               # RequestedEnergyTransferMode (DC_extended, AC_three_phase_core, ...)
    phases: int = 3                     # AC: 1 or 3
    sa_tuple_id: int = 0                # the SAScheduleTuple the car selected at PowerDelivery(Start)
    pmax: tuple = ()                    # the offered PMaxSchedule: ((start s, watts), ...)
    schedule_start: float = 0.0         # when it was offered (its intervals count from there)
    contract_key: object = None         # PnC: the contract certificate's public key (receipts)
    receipt_due: bool = False           # a loop response asked for a MeteringReceipt
    renegotiate: bool = False           # the charger asks the car to renegotiate (EVSENotification)


@dataclass(frozen=True)
class Reply:
    response: object
    next_state: State
    terminate: bool = False
    reason: str | None = None  # why the session ends, when the response code alone does not say
    end: EndReason | None = None  # ... as the enum the supervisor sees (default: from the response)
    signature: object = None      # DIN/-2: the response's header signature (CertificateInstallation)
    # no response yet: the session calls wait(now) every 50 ms until it gives the reply (a -2
    # CertificateInstallation the CSMS answers; -2 has no EVSEProcessing=Ongoing for it)
    wait: Callable[[float], Reply | None] | None = None


class SequenceError(Exception):
    """A request that is not allowed now (answered with FAILED_SequenceError)."""
