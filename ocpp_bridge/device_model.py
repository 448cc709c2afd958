"""The station's OCPP device model: the components v2h has (controllers, the ChargingStation, its
one EVSE and its one Connector), their variables and characteristics, GetVariables /
SetVariables / GetBaseReport, and persistence of what the CSMS sets (in the store, so a restart
keeps it). A variable is ReadWrite only where writing it changes what the station does; the
others report fixed behaviour or a live state (``getters``: AvailabilityState, DateTime, …).

Which variables must exist and how (mutability, data type, unit, valuesList, maxLimit) follows
OCPP 2.0.1 part 6 TC_B_53_CS (the list of required Core variables, checked through a
FullInventory) and OCPP 2.1 part 2 appendix 3 (standardized components and variables).

Values are strings on the wire; each variable checks what may be written (data type, limits,
option, sequence and member lists, and a per-variable validator where the station knows more).
Listeners apply a change at once; a variable marked ``reboot_required`` is stored and answered
RebootRequired (it takes effect at the next boot).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from .store import Store

RO, RW, WO = "ReadOnly", "ReadWrite", "WriteOnly"
DAY = 86400  # s: the upper bound of every interval the CSMS may set (a bigger one overflows timers)
# what a meter sample of v2h can hold (TransactionEvent, MeterValues); SoC once the car reported it
MEASURANDS = ("Energy.Active.Import.Register", "Energy.Active.Export.Register", "Power.Active.Import",
              "Power.Active.Export", "SoC")
_METER = ",".join(MEASURANDS[:4])        # the default: the meter's registers and power
TX_POINTS = ("EVConnected", "Authorized", "PowerPathClosed", "EnergyTransfer")
AVAILABILITY = ("Available", "Occupied", "Reserved", "Unavailable", "Faulted")
TIME_SOURCES = ("Heartbeat", "NTP", "GPS", "RealTimeClock", "MobileNetwork", "RadioTimeTransmitter")

Key = tuple[str, "int | None", "int | None", str, "str | None"]  # component, evse, connector, variable, instance


@dataclass(frozen=True)
class Variable:
    component: str
    name: str
    data_type: str          # integer, decimal, boolean, string, dateTime, OptionList, SequenceList, MemberList
    mutability: str
    default: str
    unit: str | None = None
    values: tuple[str, ...] = ()     # OptionList / SequenceList / MemberList: what the station supports
    min: float | None = None
    max: float | None = None
    instance: str | None = None      # the variable's instance (e.g. MessageTimeout "Default")
    persistent: bool = True          # a value the CSMS sets survives a restart
    evse: int | None = None          # the component's EVSE (EVSE, Connector components)
    connector: int | None = None
    max_limit: float | None = None   # reported as variableCharacteristics.maxLimit
    reboot_required: bool = False    # a write is stored and applies at the next boot

    @property
    def key(self) -> Key:
        return self.component, self.evse, self.connector, self.name, self.instance

    def check(self, value: str) -> str | None:
        """Why ``value`` cannot be written, or None."""
        if self.data_type in ("integer", "decimal"):
            try:
                number = int(value) if self.data_type == "integer" else float(value)
            except ValueError:
                return f"not {'an integer' if self.data_type == 'integer' else 'a decimal'}"
            if not math.isfinite(number):  # float() reads "nan", "inf", "1e999"
                return "not a finite number"
            if self.min is not None and number < self.min or self.max is not None and number > self.max:
                return f"out of range {self.min:g}..{self.max:g}" if self.min is not None and self.max is not None \
                    else "out of range"
        elif self.data_type == "boolean" and value not in ("true", "false"):
            return "not true or false"
        elif self.data_type == "dateTime":
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return "not a dateTime"
        elif self.data_type == "OptionList" and value not in self.values:
            return f"not one of {','.join(self.values)}"
        elif self.data_type in ("MemberList", "SequenceList"):
            items = [v.strip() for v in value.split(",")] if value else []
            if not set(items) <= set(self.values):
                return f"not a subset of {','.join(self.values)}"
            if len(set(items)) != len(items):
                return "an element is listed twice"
            if self.data_type == "SequenceList" and not items:
                return "empty"
        elif self.data_type == "string" and self.max is not None and not (self.min or 0) <= len(value) <= self.max:
            return f"length not in {self.min or 0:g}..{self.max:g}"
        return None


def standard_variables(*, identity: str, security_profile: int, secc_id: str, heartbeat: int = 60,
                       retry_min: float = 3, retry_random: float = 10, retry_repeat: int = 5,
                       message_timeout: float = 30, message_attempts: int = 3,
                       tx_updated_interval: float = 60, evse_power_w: float = 11000.0,
                       connector_type: str = "cCCS2", supply_phases: int = 0,
                       slots: tuple[str, ...] = ("1", "2")) -> list[Variable]:
    """The variables of the blocks v2h implements, with this station's values as defaults."""
    evse = dict(evse=1)
    conn = dict(evse=1, connector=1)
    return [
        # --- the physical components (one EVSE, one connector; AvailabilityState is live) -----------------
        Variable("ChargingStation", "AvailabilityState", "OptionList", RO, "Available", values=AVAILABILITY,
                 persistent=False),
        Variable("ChargingStation", "Available", "boolean", RO, "true", persistent=False),
        Variable("ChargingStation", "SupplyPhases", "integer", RO, str(supply_phases)),
        Variable("ChargingStation", "AllowNewSessionsPendingFirmwareUpdate", "boolean", RW, "false"),
        Variable("EVSE", "AvailabilityState", "OptionList", RO, "Available", values=AVAILABILITY, persistent=False,
                 **evse),
        Variable("EVSE", "Available", "boolean", RO, "true", persistent=False, **evse),
        Variable("EVSE", "Power", "decimal", RO, "0", "W", max_limit=evse_power_w, persistent=False, **evse),
        Variable("EVSE", "SupplyPhases", "integer", RO, str(supply_phases), **evse),
        Variable("EVSE", "AllowReset", "boolean", RO, "false", **evse),  # the whole station resets, not one EVSE
        Variable("Connector", "AvailabilityState", "OptionList", RO, "Available", values=AVAILABILITY,
                 persistent=False, **conn),
        Variable("Connector", "Available", "boolean", RO, "true", persistent=False, **conn),
        Variable("Connector", "ConnectorType", "string", RO, connector_type, **conn),
        Variable("Connector", "SupplyPhases", "integer", RO, str(supply_phases), **conn),
        # --- ClockCtrlr: the time comes from the CSMS's Heartbeat / BootNotification answers ------------
        Variable("ClockCtrlr", "DateTime", "dateTime", RO, "", persistent=False),
        Variable("ClockCtrlr", "TimeSource", "SequenceList", RW, "Heartbeat", values=("Heartbeat",)),
        # --- OCPPCommCtrlr -------------------------------------------------------------------------------
        Variable("OCPPCommCtrlr", "ActiveNetworkProfile", "integer", RO, slots[0], persistent=False),
        Variable("OCPPCommCtrlr", "HeartbeatInterval", "integer", RW, str(heartbeat), "s", min=1, max=DAY),
        # the active NetworkConnectionProfile's messageTimeout (SetNetworkProfile writes it, not SetVariables)
        Variable("OCPPCommCtrlr", "MessageTimeout", "integer", RO, str(int(message_timeout)), "s", instance="Default",
                 persistent=False),
        Variable("OCPPCommCtrlr", "MessageAttempts", "integer", RW, str(message_attempts), min=1, max=100,
                 instance="TransactionEvent"),
        Variable("OCPPCommCtrlr", "MessageAttemptInterval", "integer", RW, str(int(retry_min)), "s", min=0, max=DAY,
                 instance="TransactionEvent"),
        Variable("OCPPCommCtrlr", "RetryBackOffWaitMinimum", "integer", RW, str(int(retry_min)), "s", min=0, max=DAY),
        Variable("OCPPCommCtrlr", "RetryBackOffRandomRange", "integer", RW, str(int(retry_random)), "s", min=0, max=DAY),
        Variable("OCPPCommCtrlr", "RetryBackOffRepeatTimes", "integer", RW, str(retry_repeat), min=0, max=16),
        Variable("OCPPCommCtrlr", "NetworkConfigurationPriority", "SequenceList", RW, slots[0], values=slots,
                 reboot_required=True),
        Variable("OCPPCommCtrlr", "NetworkProfileConnectionAttempts", "integer", RW, "3", min=1, max=100),
        Variable("OCPPCommCtrlr", "OfflineThreshold", "integer", RW, "60", "s", min=0, max=DAY),
        Variable("OCPPCommCtrlr", "ResetRetries", "integer", RW, "0", min=0, max=10),
        Variable("OCPPCommCtrlr", "UnlockOnEVSideDisconnect", "boolean", RO, "false"),  # a fixed cable
        Variable("OCPPCommCtrlr", "WebSocketPingInterval", "integer", RO, "30", "s"),
        Variable("OCPPCommCtrlr", "FileTransferProtocols", "MemberList", RO, "HTTP,HTTPS", values=("HTTP", "HTTPS")),
        # --- SecurityCtrlr ---------------------------------------------------------------------------
        Variable("SecurityCtrlr", "SecurityProfile", "integer", RO, str(security_profile), persistent=False),
        Variable("SecurityCtrlr", "Identity", "string", RO, identity),
        Variable("SecurityCtrlr", "BasicAuthPassword", "string", WO, "", min=16, max=40),
        Variable("SecurityCtrlr", "OrganizationName", "string", RW, "v2h", max=50),
        Variable("SecurityCtrlr", "CertificateEntries", "integer", RO, "0", max_limit=1, persistent=False),
        # --- AuthCtrlr -----------------------------------------------------------------------------------
        # false: a car's EIM request is authorized at once (NoAuthorization, like C02's start button);
        # true: it waits (EVSEProcessing Ongoing) for RequestStartTransaction — v2h has no card reader
        Variable("AuthCtrlr", "Enabled", "boolean", RW, "false"),
        Variable("AuthCtrlr", "AuthorizeRemoteStart", "boolean", RW, "false"),
        Variable("AuthCtrlr", "LocalAuthorizeOffline", "boolean", RW, "true"),
        Variable("AuthCtrlr", "LocalPreAuthorize", "boolean", RW, "false"),
        # --- ISO15118Ctrlr, V2XChargingCtrlr --------------------------------------------------------------
        Variable("ISO15118Ctrlr", "Enabled", "boolean", RO, "true"),
        Variable("ISO15118Ctrlr", "PnCEnabled", "boolean", RO, "true"),
        Variable("ISO15118Ctrlr", "ContractValidationOffline", "boolean", RW, "true"),
        Variable("ISO15118Ctrlr", "CentralContractValidationAllowed", "boolean", RO, "false"),
        Variable("ISO15118Ctrlr", "V2GCertificateInstallationEnabled", "boolean", RO, "false"),
        Variable("ISO15118Ctrlr", "SeccId", "string", RO, secc_id),
        Variable("V2XChargingCtrlr", "Enabled", "boolean", RW, "true"),
        Variable("V2XChargingCtrlr", "SupportedOperationModes", "MemberList", RO,
                 "ChargingOnly,CentralSetpoint,ExternalSetpoint,ExternalLimits,Idle",
                 values=("ChargingOnly", "CentralSetpoint", "ExternalSetpoint", "ExternalLimits", "Idle")),
        Variable("V2XChargingCtrlr", "SupportedEnergyTransferModes", "MemberList", RO, "DC,DC_BPT,AC_three_phase,AC_BPT",
                 values=("DC", "DC_BPT", "AC_three_phase", "AC_BPT")),
        # --- SmartChargingCtrlr --------------------------------------------------------------------------
        Variable("SmartChargingCtrlr", "Enabled", "boolean", RO, "true"),
        Variable("SmartChargingCtrlr", "Available", "boolean", RO, "true"),
        Variable("SmartChargingCtrlr", "RateUnit", "MemberList", RO, "A,W", values=("A", "W")),
        Variable("SmartChargingCtrlr", "ProfileStackLevel", "integer", RO, "10"),
        Variable("SmartChargingCtrlr", "PeriodsPerSchedule", "integer", RO, "288"),
        Variable("SmartChargingCtrlr", "Entries", "integer", RO, "0", instance="ChargingProfiles", max_limit=64,
                 persistent=False),
        Variable("SmartChargingCtrlr", "LimitChangeSignificance", "decimal", RW, "0", "Percent", min=0, max=100),
        # --- TxCtrlr ---------------------------------------------------------------------------------------
        Variable("TxCtrlr", "TxStartPoint", "MemberList", RW, "EVConnected", values=TX_POINTS),
        Variable("TxCtrlr", "TxStopPoint", "MemberList", RW, "EVConnected", values=TX_POINTS),
        Variable("TxCtrlr", "EVConnectionTimeOut", "integer", RW, "60", "s", min=1, max=DAY),
        Variable("TxCtrlr", "StopTxOnEVSideDisconnect", "boolean", RO, "true"),
        Variable("TxCtrlr", "StopTxOnInvalidId", "boolean", RW, "true"),
        # --- SampledDataCtrlr, AlignedDataCtrlr --------------------------------------------------------------
        Variable("SampledDataCtrlr", "Enabled", "boolean", RO, "true"),
        Variable("SampledDataCtrlr", "TxUpdatedInterval", "integer", RW, str(int(tx_updated_interval)), "s", min=0,
                 max=DAY),
        Variable("SampledDataCtrlr", "TxStartedMeasurands", "MemberList", RW, _METER, values=MEASURANDS,
                 max_limit=len(MEASURANDS)),
        Variable("SampledDataCtrlr", "TxUpdatedMeasurands", "MemberList", RW, ",".join(MEASURANDS), values=MEASURANDS,
                 max_limit=len(MEASURANDS)),
        Variable("SampledDataCtrlr", "TxEndedMeasurands", "MemberList", RW, ",".join(MEASURANDS), values=MEASURANDS,
                 max_limit=len(MEASURANDS)),
        Variable("SampledDataCtrlr", "TxEndedInterval", "integer", RW, "0", "s", min=0, max=DAY),
        Variable("AlignedDataCtrlr", "Enabled", "boolean", RO, "true"),
        Variable("AlignedDataCtrlr", "Interval", "integer", RW, "900", "s", min=0, max=DAY),
        Variable("AlignedDataCtrlr", "Measurands", "MemberList", RW, _METER, values=MEASURANDS,
                 max_limit=len(MEASURANDS)),
        Variable("AlignedDataCtrlr", "SendDuringIdle", "boolean", RW, "false"),
        Variable("AlignedDataCtrlr", "TxEndedMeasurands", "MemberList", RW, "Energy.Active.Import.Register",
                 values=MEASURANDS, max_limit=len(MEASURANDS)),
        Variable("AlignedDataCtrlr", "TxEndedInterval", "integer", RW, "0", "s", min=0, max=DAY),
        # --- DeviceDataCtrlr: what one message may hold ----------------------------------------------
        Variable("DeviceDataCtrlr", "ItemsPerMessage", "integer", RO, "32", instance="GetReport"),
        Variable("DeviceDataCtrlr", "ItemsPerMessage", "integer", RO, "32", instance="GetVariables"),
        Variable("DeviceDataCtrlr", "ItemsPerMessage", "integer", RO, "32", instance="SetVariables"),
        Variable("DeviceDataCtrlr", "BytesPerMessage", "integer", RO, "65000", instance="GetReport"),
        Variable("DeviceDataCtrlr", "BytesPerMessage", "integer", RO, "65000", instance="GetVariables"),
        Variable("DeviceDataCtrlr", "BytesPerMessage", "integer", RO, "65000", instance="SetVariables"),
    ]


def _id(key: Key) -> str:
    component, evse, connector, name, instance = key
    where = "" if evse is None else f"@{evse}" + ("" if connector is None else f".{connector}")
    return f"{component}{where}/{name}/{instance or ''}"


class DeviceModel:
    """Variables, their persisted values, and the three device-model requests."""

    def __init__(self, variables: list[Variable], outbox: Store):
        self.variables: dict[Key, Variable] = {v.key: v for v in variables}
        self.outbox = outbox
        saved = outbox.get("device_model", {})
        self.values: dict[Key, str] = {v.key: saved.get(_id(v.key), v.default) for v in variables}
        self.persisted = {v.key for v in variables if _id(v.key) in saved}
        self.listeners: dict[Key, list[Callable[[str], None]]] = {}
        self.getters: dict[Key, Callable[[], str]] = {}         # live values (AvailabilityState, DateTime)
        self.validators: dict[Key, Callable[[str], str | None]] = {}  # what only the station knows (slots exist)

    @staticmethod
    def key(component: str, name: str, instance: str | None = None, evse: int | None = None,
            connector: int | None = None) -> Key:
        return component, evse, connector, name, instance

    def add(self, variable: Variable) -> None:
        """A variable of a component outside the standard blocks (v2h's own)."""
        self.variables[variable.key] = variable
        self.values.setdefault(variable.key, variable.default)

    def value(self, component: str, name: str, instance: str | None = None, *, evse: int | None = None,
              connector: int | None = None) -> str:
        key = (component, evse, connector, name, instance)
        getter = self.getters.get(key)
        return getter() if getter is not None else self.values[key]

    def set_value(self, component: str, name: str, value: str, instance: str | None = None) -> None:
        """The station itself updates a variable's value (e.g. HeartbeatInterval from the boot)."""
        self.values[(component, None, None, name, instance)] = value

    def listen(self, component: str, name: str, fn: Callable[[str], None], instance: str | None = None, *,
               evse: int | None = None, connector: int | None = None) -> None:
        """Call ``fn(value)`` whenever the CSMS sets this variable, and now if it set it before
        a restart (the persisted value wins over the start-up configuration)."""
        key = (component, evse, connector, name, instance)
        self.listeners.setdefault(key, []).append(fn)
        if key in self.persisted:
            fn(self.values[key])

    def get(self, component: str, name: str, fn: Callable[[], str], instance: str | None = None, *,
            evse: int | None = None, connector: int | None = None) -> None:
        """The variable's value is live: ``fn()`` gives it."""
        self.getters[(component, evse, connector, name, instance)] = fn

    def validate(self, component: str, name: str, fn: Callable[[str], str | None],
                 instance: str | None = None) -> None:
        self.validators[(component, None, None, name, instance)] = fn

    def items_per_message(self, instance: str) -> int:
        return int(self.values[("DeviceDataCtrlr", None, None, "ItemsPerMessage", instance)])

    # --- requests ----------------------------------------------------------------------------
    def _lookup(self, item: dict, forbidden: str) -> tuple[Variable | None, dict]:
        """The variable a Get/SetVariableData item names, and its result so far: the echoed
        component/variable/attributeType, and a refusal (attributeStatus) when the variable is
        unknown, the attribute is not Actual, or its mutability is ``forbidden``."""
        res = {"component": item["component"], "variable": item["variable"]}
        if "attributeType" in item:
            res["attributeType"] = item["attributeType"]
        component, variable = item["component"], item["variable"]
        evse = component.get("evse", {})
        key = (component["name"], evse.get("id"), evse.get("connectorId"), variable["name"], variable.get("instance"))
        var = self.variables.get(key)
        if var is None:
            known = any(k[0] == component["name"] and k[1] == key[1] and k[2] == key[2] for k in self.variables)
            res["attributeStatus"] = "UnknownVariable" if known else "UnknownComponent"
        elif item.get("attributeType", "Actual") != "Actual":
            res["attributeStatus"] = "NotSupportedAttributeType"
        elif var.mutability == forbidden:
            res["attributeStatus"] = "Rejected"
            res["attributeStatusInfo"] = {"reasonCode": forbidden}
        return var, res

    def get_variables(self, payload: dict) -> dict:
        results, limit = [], self.items_per_message("GetVariables")
        for n, item in enumerate(payload["getVariableData"]):
            if n >= limit:  # DeviceDataCtrlr.ItemsPerMessage: the ones beyond are refused, not read
                results.append(_too_many(item))
                continue
            var, res = self._lookup(item, WO)
            if "attributeStatus" not in res:
                res["attributeStatus"] = "Accepted"
                res["attributeValue"] = self.value(var.component, var.name, var.instance, evse=var.evse,
                                                   connector=var.connector)
            results.append(res)
        return {"getVariableResult": results}

    def set_variables(self, payload: dict) -> dict:
        results, changed, limit = [], [], self.items_per_message("SetVariables")
        for n, item in enumerate(payload["setVariableData"]):
            if n >= limit:
                results.append(_too_many(item))
                continue
            var, res = self._lookup(item, RO)
            value = item["attributeValue"]
            if "attributeStatus" not in res:
                why = var.check(value)
                if why is None and var.key in self.validators:
                    why = self.validators[var.key](value)
                if why is not None:
                    res["attributeStatus"] = "Rejected"
                    res["attributeStatusInfo"] = {"reasonCode": "InvalidValue", "additionalInfo": why[:512]}
                else:
                    res["attributeStatus"] = "RebootRequired" if var.reboot_required else "Accepted"
                    self.values[var.key] = value
                    changed.append(var.key)
            results.append(res)
        if changed:
            kept = [k for k in changed if self.variables[k].persistent]
            if kept:
                saved = self.outbox.get("device_model", {})
                saved.update({_id(k): self.values[k] for k in kept})
                self.outbox.set("device_model", saved)
                self.persisted.update(kept)
            for k in changed:
                if not self.variables[k].reboot_required:
                    for fn in self.listeners.get(k, []):
                        fn(self.values[k])
        return {"setVariableResult": results}

    def report(self, request_id: int, base: str, generated_at: str) -> list[dict]:
        """NotifyReport payloads for GetBaseReport: FullInventory, or ConfigurationInventory
        (the writable ones), DeviceDataCtrlr.ItemsPerMessage (GetReport) items per message."""
        chosen = [v for v in self.variables.values() if base == "FullInventory"
                  or (base == "ConfigurationInventory" and v.mutability != RO)]
        data = []
        for v in chosen:
            attribute = {"type": "Actual", "mutability": v.mutability, "persistent": v.persistent, "constant": False}
            if v.mutability != WO:
                attribute["value"] = self.value(v.component, v.name, v.instance, evse=v.evse, connector=v.connector)
            characteristics: dict = {"dataType": v.data_type, "supportsMonitoring": False}
            if v.unit:
                characteristics["unit"] = v.unit
            if v.values:
                characteristics["valuesList"] = ",".join(v.values)
            if v.max_limit is not None:
                characteristics["maxLimit"] = v.max_limit
            elif v.max is not None and v.data_type in ("integer", "decimal", "string"):
                characteristics["maxLimit"] = v.max
            if v.min is not None and v.data_type in ("integer", "decimal"):
                characteristics["minLimit"] = v.min
            component: dict = {"name": v.component}
            if v.evse is not None:
                component["evse"] = {"id": v.evse, **({"connectorId": v.connector} if v.connector is not None else {})}
            variable = {"name": v.name, **({"instance": v.instance} if v.instance else {})}
            data.append({"component": component, "variable": variable, "variableAttribute": [attribute],
                         "variableCharacteristics": characteristics})
        per = max(1, self.items_per_message("GetReport"))
        chunks = [data[i:i + per] for i in range(0, len(data), per)] or [[]]
        return [{"requestId": request_id, "generatedAt": generated_at, "seqNo": n, "tbc": n < len(chunks) - 1,
                 **({"reportData": chunk} if chunk else {})} for n, chunk in enumerate(chunks)]


def _too_many(item: dict) -> dict:
    res = {"component": item["component"], "variable": item["variable"], "attributeStatus": "Rejected",
           "attributeStatusInfo": {"reasonCode": "TooManyElements"}}
    if "attributeType" in item:
        res["attributeType"] = item["attributeType"]
    return res
