"""The station's OCPP 2.1 device model: the variables of the blocks v2h implements, their
characteristics, GetVariables / SetVariables / GetBaseReport, and persistence of what the CSMS
sets (in the outbox's SQLite file, so a restart keeps it). A variable is ReadWrite only where
writing it changes what the station does; the others report the fixed behaviour.

Values are strings on the wire; each variable checks what may be written (data type, limits,
option and member lists). Listeners apply a change at once (e.g. HeartbeatInterval).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from .store import Store

RO, RW, WO = "ReadOnly", "ReadWrite", "WriteOnly"
DAY = 86400  # s: the upper bound of every interval the CSMS may set (a bigger one overflows timers)
# what a meter sample of v2h holds (TransactionEvent, MeterValues); SoC once the car reported it
_MEASURAND_LIST = ("Energy.Active.Import.Register", "Energy.Active.Export.Register", "Power.Active.Import",
                   "Power.Active.Export", "SoC")
_MEASURANDS = ",".join(_MEASURAND_LIST)


@dataclass(frozen=True)
class Variable:
    component: str
    name: str
    data_type: str          # integer, decimal, boolean, string, OptionList, MemberList
    mutability: str
    default: str
    unit: str | None = None
    values: tuple[str, ...] = ()     # OptionList / MemberList
    min: float | None = None
    max: float | None = None
    instance: str | None = None      # the variable's instance (e.g. MessageTimeout "Default")
    persistent: bool = True          # a value the CSMS sets survives a restart

    @property
    def key(self) -> tuple[str, str, str | None]:
        return self.component, self.name, self.instance

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
                return f"out of range {self.min}..{self.max}"
        elif self.data_type == "boolean" and value not in ("true", "false"):
            return "not true or false"
        elif self.data_type == "OptionList" and value not in self.values:
            return f"not one of {','.join(self.values)}"
        elif self.data_type == "MemberList" and not set(filter(None, value.split(","))) <= set(self.values):
            return f"not a subset of {','.join(self.values)}"
        elif self.data_type == "string" and self.max is not None and not (self.min or 0) <= len(value) <= self.max:
            return f"length not in {self.min or 0}..{int(self.max)}"
        return None


def standard_variables(*, identity: str, security_profile: int, secc_id: str, heartbeat: int = 60,
                       retry_min: float = 3, retry_random: float = 10, retry_repeat: int = 5,
                       message_timeout: float = 30, message_attempts: int = 3,
                       tx_updated_interval: float = 60) -> list[Variable]:
    """The required variables of the blocks v2h implements (OCPP 2.1 part 2 appendix), with
    this station's values as defaults."""
    return [
        Variable("OCPPCommCtrlr", "HeartbeatInterval", "integer", RW, str(heartbeat), "s", min=1, max=DAY),
        Variable("OCPPCommCtrlr", "MessageTimeout", "integer", RW, str(int(message_timeout)), "s", min=1, max=600,
                 instance="Default"),
        Variable("OCPPCommCtrlr", "MessageAttempts", "integer", RW, str(message_attempts), min=1, max=100,
                 instance="TransactionEvent"),
        Variable("OCPPCommCtrlr", "MessageAttemptInterval", "integer", RW, str(int(retry_min)), "s", min=0, max=DAY,
                 instance="TransactionEvent"),
        Variable("OCPPCommCtrlr", "RetryBackOffWaitMinimum", "integer", RW, str(int(retry_min)), "s", min=0, max=DAY),
        Variable("OCPPCommCtrlr", "RetryBackOffRandomRange", "integer", RW, str(int(retry_random)), "s", min=0, max=DAY),
        Variable("OCPPCommCtrlr", "RetryBackOffRepeatTimes", "integer", RW, str(retry_repeat), min=0, max=16),
        Variable("OCPPCommCtrlr", "NetworkConfigurationPriority", "SequenceList", RO, "0"),
        Variable("OCPPCommCtrlr", "NetworkProfileConnectionAttempts", "integer", RO, "3"),
        Variable("OCPPCommCtrlr", "OfflineThreshold", "integer", RO, "60", "s"),
        Variable("OCPPCommCtrlr", "ResetRetries", "integer", RO, "0"),
        Variable("OCPPCommCtrlr", "UnlockOnEVSideDisconnect", "boolean", RO, "true"),
        Variable("OCPPCommCtrlr", "WebSocketPingInterval", "integer", RO, "0", "s"),  # no websocket pings
        Variable("OCPPCommCtrlr", "FileTransferProtocols", "MemberList", RO, "",
                 values=("FTP", "FTPS", "HTTP", "HTTPS", "SFTP")),               # no file transfers yet
        Variable("SecurityCtrlr", "SecurityProfile", "integer", RO, str(security_profile)),
        Variable("SecurityCtrlr", "Identity", "string", RO, identity),
        Variable("SecurityCtrlr", "BasicAuthPassword", "string", WO, "", min=16, max=40),
        Variable("SecurityCtrlr", "OrganizationName", "string", RW, "v2h", max=50),
        Variable("SecurityCtrlr", "CertificateEntries", "integer", RO, "0"),
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
        Variable("SmartChargingCtrlr", "Enabled", "boolean", RO, "true"),
        Variable("SmartChargingCtrlr", "Available", "boolean", RO, "true"),
        Variable("SmartChargingCtrlr", "RateUnit", "MemberList", RO, "W", values=("W",)),
        Variable("SmartChargingCtrlr", "ProfileStackLevel", "integer", RO, "10"),
        Variable("SmartChargingCtrlr", "PeriodsPerSchedule", "integer", RO, "1024"),
        Variable("SmartChargingCtrlr", "Entries", "integer", RO, "0", instance="ChargingProfiles"),
        Variable("SmartChargingCtrlr", "LimitChangeSignificance", "decimal", RO, "0"),
        Variable("TxCtrlr", "TxStartPoint", "MemberList", RO, "EVConnected",
                 values=("EVConnected", "Authorized", "PowerPathClosed", "EnergyTransfer")),
        Variable("TxCtrlr", "TxStopPoint", "MemberList", RO, "EVConnected",
                 values=("EVConnected", "Authorized", "PowerPathClosed", "EnergyTransfer")),
        Variable("TxCtrlr", "EVConnectionTimeOut", "integer", RO, "60", "s"),
        Variable("TxCtrlr", "StopTxOnEVSideDisconnect", "boolean", RO, "true"),
        Variable("TxCtrlr", "StopTxOnInvalidId", "boolean", RO, "true"),
        Variable("SampledDataCtrlr", "TxUpdatedInterval", "integer", RW, str(int(tx_updated_interval)), "s", min=0, max=DAY),
        Variable("SampledDataCtrlr", "TxStartedMeasurands", "MemberList", RO, _MEASURANDS, values=_MEASURAND_LIST),
        Variable("SampledDataCtrlr", "TxEndedMeasurands", "MemberList", RO, _MEASURANDS, values=_MEASURAND_LIST),
        Variable("SampledDataCtrlr", "TxEndedInterval", "integer", RO, "0", "s"),
        Variable("SampledDataCtrlr", "TxUpdatedMeasurands", "MemberList", RO, _MEASURANDS, values=_MEASURAND_LIST),
        Variable("AlignedDataCtrlr", "Enabled", "boolean", RO, "true"),
        Variable("AlignedDataCtrlr", "Interval", "integer", RW, "900", "s", min=0, max=DAY),
        Variable("AlignedDataCtrlr", "Measurands", "MemberList", RO, _MEASURANDS, values=_MEASURAND_LIST),
        Variable("AlignedDataCtrlr", "TxEndedMeasurands", "MemberList", RO, "", values=_MEASURAND_LIST),
        Variable("AlignedDataCtrlr", "TxEndedInterval", "integer", RO, "0", "s"),
        Variable("AuthCtrlr", "AuthorizeRemoteStart", "boolean", RO, "false"),
        Variable("AuthCtrlr", "LocalAuthorizeOffline", "boolean", RO, "true"),
        Variable("AuthCtrlr", "LocalPreAuthorize", "boolean", RO, "false"),
        Variable("DeviceDataCtrlr", "ItemsPerMessage", "integer", RO, "32", instance="GetReport"),
        Variable("DeviceDataCtrlr", "ItemsPerMessage", "integer", RO, "32", instance="GetVariables"),
        Variable("DeviceDataCtrlr", "ItemsPerMessage", "integer", RO, "32", instance="SetVariables"),
        Variable("DeviceDataCtrlr", "BytesPerMessage", "integer", RO, "65000", instance="GetReport"),
        Variable("DeviceDataCtrlr", "BytesPerMessage", "integer", RO, "65000", instance="GetVariables"),
        Variable("DeviceDataCtrlr", "BytesPerMessage", "integer", RO, "65000", instance="SetVariables"),
    ]


class DeviceModel:
    """Variables, their persisted values, and the three device-model requests."""

    ITEMS_PER_REPORT = 32

    def __init__(self, variables: list[Variable], outbox: Store):
        self.variables = {v.key: v for v in variables}
        self.outbox = outbox
        saved = outbox.get("device_model", {})
        self.values = {v.key: saved.get(self._id(v.key), v.default) for v in variables}
        self.persisted = {v.key for v in variables if self._id(v.key) in saved}
        self.listeners: dict[tuple, list[Callable[[str], None]]] = {}

    @staticmethod
    def _id(key) -> str:
        return "/".join(k or "" for k in key)

    def add(self, variable: Variable) -> None:
        """A variable of a component outside the standard blocks (v2h's own)."""
        self.variables[variable.key] = variable
        self.values.setdefault(variable.key, variable.default)

    def value(self, component: str, name: str, instance: str | None = None) -> str:
        return self.values[(component, name, instance)]

    def listen(self, component: str, name: str, fn: Callable[[str], None], instance: str | None = None) -> None:
        """Call ``fn(value)`` whenever the CSMS sets this variable, and now if it set it before
        a restart (the persisted value wins over the start-up configuration)."""
        key = (component, name, instance)
        self.listeners.setdefault(key, []).append(fn)
        if key in self.persisted:
            fn(self.values[key])

    def _lookup(self, item: dict, forbidden: str) -> tuple[Variable | None, dict]:
        """The variable a Get/SetVariableData item names, and its result so far: the echoed
        component/variable/attributeType, and a refusal (attributeStatus) when the variable is
        unknown, the attribute is not Actual, or its mutability is ``forbidden``."""
        res = {"component": item["component"], "variable": item["variable"]}
        if "attributeType" in item:
            res["attributeType"] = item["attributeType"]
        component, variable = item["component"], item["variable"]
        var = self.variables.get((component["name"], variable["name"], variable.get("instance")))
        if var is None:
            known = any(k[0] == component["name"] for k in self.variables)
            res["attributeStatus"] = "UnknownVariable" if known else "UnknownComponent"
        elif item.get("attributeType", "Actual") != "Actual":
            res["attributeStatus"] = "NotSupportedAttributeType"
        elif var.mutability == forbidden:
            res["attributeStatus"] = "Rejected"
            res["attributeStatusInfo"] = {"reasonCode": forbidden}
        return var, res

    # --- requests ----------------------------------------------------------------------------
    def get_variables(self, payload: dict) -> dict:
        results = []
        for item in payload["getVariableData"]:
            var, res = self._lookup(item, WO)
            if "attributeStatus" not in res:
                res["attributeStatus"] = "Accepted"
                res["attributeValue"] = self.values[var.key]
            results.append(res)
        return {"getVariableResult": results}

    def set_variables(self, payload: dict) -> dict:
        results, changed = [], []
        for item in payload["setVariableData"]:
            var, res = self._lookup(item, RO)
            value = item["attributeValue"]
            if "attributeStatus" not in res:
                if (why := var.check(value)) is not None:
                    res["attributeStatus"] = "Rejected"
                    res["attributeStatusInfo"] = {"reasonCode": "InvalidValue", "additionalInfo": why}
                else:
                    res["attributeStatus"] = "Accepted"
                    self.values[var.key] = value
                    changed.append(var.key)
            results.append(res)
        if changed:
            kept = [k for k in changed if self.variables[k].persistent]
            if kept:
                saved = self.outbox.get("device_model", {})
                saved.update({self._id(k): self.values[k] for k in kept})
                self.outbox.set("device_model", saved)
                self.persisted.update(kept)
            for k in changed:
                for fn in self.listeners.get(k, []):
                    fn(self.values[k])
        return {"setVariableResult": results}

    def report(self, request_id: int, base: str, generated_at: str) -> list[dict]:
        """NotifyReport payloads for GetBaseReport: FullInventory, or ConfigurationInventory
        (the writable ones)."""
        chosen = [v for v in self.variables.values() if base == "FullInventory"
                  or (base == "ConfigurationInventory" and v.mutability != RO)]
        data = []
        for v in chosen:
            attribute = {"type": "Actual", "mutability": v.mutability, "persistent": v.persistent, "constant": False}
            if v.mutability != WO:
                attribute["value"] = self.values[v.key]
            characteristics: dict = {"dataType": v.data_type, "supportsMonitoring": False}
            if v.unit:
                characteristics["unit"] = v.unit
            if v.values:
                characteristics["valuesList"] = ",".join(v.values)
            variable = {"name": v.name, **({"instance": v.instance} if v.instance else {})}
            data.append({"component": {"name": v.component}, "variable": variable, "variableAttribute": [attribute],
                         "variableCharacteristics": characteristics})
        chunks = [data[i:i + self.ITEMS_PER_REPORT] for i in range(0, len(data), self.ITEMS_PER_REPORT)] or [[]]
        return [{"requestId": request_id, "generatedAt": generated_at, "seqNo": n, "tbc": n < len(chunks) - 1,
                 **({"reportData": chunk} if chunk else {})} for n, chunk in enumerate(chunks)]
