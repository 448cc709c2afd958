"""The simulated car's DIN SPEC 70121 table (DC, EIM): for each response it awaits, the handler
(``handlers_iso2``, shared with ISO 15118-2) and the responses it may wait for next. "End" is
always possible. docs/sessions.md draws this table."""

from __future__ import annotations

from iso15118.statetable import StateTable, Transition as T

from .handlers_iso2 import (on_authorization, on_cable_check, on_charge_loop, on_din_charge_parameter_discovery,
                            on_din_power_delivery, on_payment_selection, on_precharge, on_service_discovery,
                            on_session_setup, on_session_stop, on_welding_detection)
from .sap import on_supported_app_protocol

TABLE = StateTable("EVCC DIN SPEC 70121", {
    "supportedAppProtocolRes": T(on_supported_app_protocol, "SessionSetupRes"),
    "SessionSetupRes": T(on_session_setup, "ServiceDiscoveryRes"),
    "ServiceDiscoveryRes": T(on_service_discovery, "ServicePaymentSelectionRes"),
    "ServicePaymentSelectionRes": T(on_payment_selection, "ContractAuthenticationRes"),
    "ContractAuthenticationRes": T(on_authorization, "ContractAuthenticationRes", "ChargeParameterDiscoveryRes"),
    "ChargeParameterDiscoveryRes": T(on_din_charge_parameter_discovery, "ChargeParameterDiscoveryRes", "CableCheckRes"),
    "CableCheckRes": T(on_cable_check, "CableCheckRes", "PreChargeRes"),
    "PreChargeRes": T(on_precharge, "PreChargeRes", "PowerDeliveryRes"),
    "PowerDeliveryRes": T(on_din_power_delivery, "CurrentDemandRes", "WeldingDetectionRes"),
    "CurrentDemandRes": T(on_charge_loop, "CurrentDemandRes", "PowerDeliveryRes"),
    "WeldingDetectionRes": T(on_welding_detection, "WeldingDetectionRes", "SessionStopRes"),
    "SessionStopRes": T(on_session_stop),
}, end="End")
