"""The simulated car's ISO 15118-20 table: for each response it awaits, the handler
(``handlers``) and the responses it may wait for next (the requests it may send: itself again
for the repeated phases — Ongoing CertificateInstallation, Authorization and ScheduleExchange, CableCheck, PreCharge,
WeldingDetection, the charge loop). "End" (the session over) is always possible.
docs/sessions.md draws this table.
"""

from __future__ import annotations

from iso15118.statetable import StateTable, Transition as T

from .handlers import (on_authorization, on_authorization_setup, on_cable_check, on_certificate_installation,
                       on_charge_loop,
                       on_charge_parameter_discovery, on_power_delivery, on_precharge, on_schedule_exchange,
                       on_service_detail, on_service_discovery, on_service_selection, on_session_setup,
                       on_session_stop, on_welding_detection)
from .sap import on_supported_app_protocol

CPD = ("DC_ChargeParameterDiscoveryRes", "AC_ChargeParameterDiscoveryRes")

TABLE = StateTable("EVCC ISO 15118-20", {
    "supportedAppProtocolRes": T(on_supported_app_protocol, "SessionSetupRes"),
    "SessionSetupRes": T(on_session_setup, "AuthorizationSetupRes"),
    "AuthorizationSetupRes": T(on_authorization_setup, "AuthorizationRes", "CertificateInstallationRes"),
    "CertificateInstallationRes": T(on_certificate_installation, "CertificateInstallationRes", "AuthorizationRes"),
    "AuthorizationRes": T(on_authorization, "AuthorizationRes", "ServiceDiscoveryRes", *CPD),  # resumed: to CPD
    "ServiceDiscoveryRes": T(on_service_discovery, "ServiceDetailRes"),
    "ServiceDetailRes": T(on_service_detail, "ServiceSelectionRes"),
    "ServiceSelectionRes": T(on_service_selection, *CPD),
    "DC_ChargeParameterDiscoveryRes": T(on_charge_parameter_discovery, "ScheduleExchangeRes"),
    "AC_ChargeParameterDiscoveryRes": T(on_charge_parameter_discovery, "ScheduleExchangeRes"),
    "ScheduleExchangeRes": T(on_schedule_exchange, "ScheduleExchangeRes", "DC_CableCheckRes", "PowerDeliveryRes"),
    "DC_CableCheckRes": T(on_cable_check, "DC_CableCheckRes", "DC_PreChargeRes"),
    "DC_PreChargeRes": T(on_precharge, "DC_PreChargeRes", "PowerDeliveryRes"),
    "PowerDeliveryRes": T(on_power_delivery, "DC_ChargeLoopRes", "AC_ChargeLoopRes", "DC_WeldingDetectionRes",
                          "SessionStopRes"),
    "DC_ChargeLoopRes": T(on_charge_loop, "DC_ChargeLoopRes", "PowerDeliveryRes"),
    "AC_ChargeLoopRes": T(on_charge_loop, "AC_ChargeLoopRes", "PowerDeliveryRes"),
    "DC_WeldingDetectionRes": T(on_welding_detection, "DC_WeldingDetectionRes", "SessionStopRes"),
    "SessionStopRes": T(on_session_stop, "ServiceDiscoveryRes"),
}, end="End")
