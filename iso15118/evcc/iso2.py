"""The simulated car's ISO 15118-2 table: for each response it awaits, the handler
(``handlers_iso2``) and the responses it may wait for next. "End" is always possible.
docs/sessions.md draws this table."""

from __future__ import annotations

from iso15118.statetable import StateTable, Transition as T

from .handlers_iso2 import (on_authorization, on_cable_check, on_certificate_installation, on_certificate_update,
                            on_charge_loop, on_charge_parameter_discovery, on_metering_receipt, on_payment_details, on_payment_selection, on_power_delivery,
                            on_precharge, on_service_discovery, on_session_setup, on_session_stop,
                            on_welding_detection)
from .sap import on_supported_app_protocol

LOOP = ("CurrentDemandRes", "ChargingStatusRes")

TABLE = StateTable("EVCC ISO 15118-2", {
    "supportedAppProtocolRes": T(on_supported_app_protocol, "SessionSetupRes"),
    "SessionSetupRes": T(on_session_setup, "ServiceDiscoveryRes"),
    "ServiceDiscoveryRes": T(on_service_discovery, "PaymentServiceSelectionRes"),
    "PaymentServiceSelectionRes": T(on_payment_selection, "AuthorizationRes", "PaymentDetailsRes",
                                    "CertificateInstallationRes", "CertificateUpdateRes"),
    "CertificateInstallationRes": T(on_certificate_installation, "PaymentDetailsRes"),
    "CertificateUpdateRes": T(on_certificate_update, "PaymentDetailsRes"),
    "PaymentDetailsRes": T(on_payment_details, "AuthorizationRes"),
    "AuthorizationRes": T(on_authorization, "AuthorizationRes", "ChargeParameterDiscoveryRes"),
    "ChargeParameterDiscoveryRes": T(on_charge_parameter_discovery, "ChargeParameterDiscoveryRes", "CableCheckRes",
                                     "PowerDeliveryRes"),
    "CableCheckRes": T(on_cable_check, "CableCheckRes", "PreChargeRes"),
    "PreChargeRes": T(on_precharge, "PreChargeRes", "PowerDeliveryRes"),
    "PowerDeliveryRes": T(on_power_delivery, *LOOP, "WeldingDetectionRes", "SessionStopRes",
                          "ChargeParameterDiscoveryRes"),
    "CurrentDemandRes": T(on_charge_loop, "CurrentDemandRes", "PowerDeliveryRes", "MeteringReceiptRes"),
    "ChargingStatusRes": T(on_charge_loop, "ChargingStatusRes", "PowerDeliveryRes", "MeteringReceiptRes"),
    "MeteringReceiptRes": T(on_metering_receipt, *LOOP, "PowerDeliveryRes"),
    "WeldingDetectionRes": T(on_welding_detection, "WeldingDetectionRes", "SessionStopRes"),
    "SessionStopRes": T(on_session_stop),
}, end="End")
