"""The charger's ISO 15118-2 state table: for each state, the requests it accepts, the handler
(``handlers_iso2``) and the states the handler may lead to (Ended is always possible). A request
not in the table gets FAILED_SequenceError. docs/sessions.md draws this table.

The sequence (ISO 15118-2:2014 clause 8.8, message sequencing): SupportedAppProtocol →
SessionSetup → ServiceDiscovery → ServiceDetail* → PaymentServiceSelection → (Plug & Charge:
CertificateInstallation | CertificateUpdate, PaymentDetails) → Authorization (repeated while
EVSEProcessing=Ongoing) → ChargeParameterDiscovery → (DC: CableCheck*, PreCharge*) →
PowerDelivery(Start) → CurrentDemand* (DC) | ChargingStatus* (AC), MeteringReceipt when a loop
response asked for one → PowerDelivery(Stop) → (DC: WeldingDetection*) → SessionStop
(Terminate | Pause); PowerDelivery(Renegotiate) in the loop goes back to ChargeParameterDiscovery.
"""

from __future__ import annotations

from iso15118.statetable import StateTable, Transition as T

from .context import State as S
from .handlers_iso2 import (authorization, cable_check, charge_parameter_discovery, charging_status, current_demand,
                            fault_guard, payment_service_selection, power_delivery, power_delivery_in_loop, precharge,
                            service_detail, service_discovery, session_setup, session_stop, welding_detection)
from .pnc_iso2 import certificate_installation, certificate_update, metering_receipt, payment_details
from .sap import supported_app_protocol

TABLE = StateTable("SECC ISO 15118-2", {
    (S.WAIT_SAP, "supportedAppProtocolReq"): T(supported_app_protocol, S.WAIT_SESSION_SETUP),
    (S.WAIT_SESSION_SETUP, "SessionSetupReq"): T(session_setup, S.WAIT_SERVICE_DISCOVERY),
    (S.WAIT_SERVICE_DISCOVERY, "ServiceDiscoveryReq"): T(service_discovery, S.WAIT_SERVICE_SELECTION),
    (S.WAIT_SERVICE_SELECTION, "ServiceDetailReq"): T(service_detail, S.WAIT_SERVICE_SELECTION),
    (S.WAIT_SERVICE_SELECTION, "PaymentServiceSelectionReq"): T(payment_service_selection, S.WAIT_AUTH,
                                                                 S.WAIT_PAYMENT_DETAILS),
    (S.WAIT_PAYMENT_DETAILS, "CertificateInstallationReq"): T(certificate_installation, S.WAIT_PAYMENT_DETAILS),
    (S.WAIT_PAYMENT_DETAILS, "CertificateUpdateReq"): T(certificate_update, S.WAIT_PAYMENT_DETAILS),
    (S.WAIT_PAYMENT_DETAILS, "PaymentDetailsReq"): T(payment_details, S.WAIT_AUTH),
    (S.WAIT_AUTH, "AuthorizationReq"): T(authorization, S.WAIT_AUTH, S.WAIT_CPD),
    (S.WAIT_CPD, "ChargeParameterDiscoveryReq"): T(charge_parameter_discovery, S.WAIT_CABLE_CHECK,
                                                   S.WAIT_POWER_DELIVERY),
    (S.WAIT_CABLE_CHECK, "CableCheckReq"): T(fault_guard(cable_check), S.WAIT_CABLE_CHECK, S.WAIT_PRECHARGE),
    (S.WAIT_PRECHARGE, "PreChargeReq"): T(fault_guard(precharge), S.WAIT_POWER_DELIVERY),
    (S.WAIT_POWER_DELIVERY, "PreChargeReq"): T(fault_guard(precharge), S.WAIT_POWER_DELIVERY),
    (S.WAIT_POWER_DELIVERY, "PowerDeliveryReq"): T(fault_guard(power_delivery), S.CHARGE_LOOP, S.WAIT_WELDING,
                                                   S.WAIT_SESSION_STOP, S.WAIT_CPD),
    (S.CHARGE_LOOP, "CurrentDemandReq"): T(fault_guard(current_demand), S.CHARGE_LOOP, S.WAIT_METERING_RECEIPT),
    (S.CHARGE_LOOP, "ChargingStatusReq"): T(fault_guard(charging_status), S.CHARGE_LOOP, S.WAIT_METERING_RECEIPT),
    (S.CHARGE_LOOP, "PowerDeliveryReq"): T(fault_guard(power_delivery_in_loop), S.WAIT_WELDING, S.WAIT_SESSION_STOP,
                                           S.WAIT_CPD),
    (S.WAIT_METERING_RECEIPT, "MeteringReceiptReq"): T(fault_guard(metering_receipt), S.CHARGE_LOOP),
    (S.WAIT_WELDING, "WeldingDetectionReq"): T(welding_detection, S.WAIT_WELDING),
    (S.WAIT_WELDING, "SessionStopReq"): T(session_stop),
    (S.WAIT_SESSION_STOP, "SessionStopReq"): T(session_stop),
}, end=S.ENDED)
