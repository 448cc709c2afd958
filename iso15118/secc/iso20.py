"""The charger's ISO 15118-20 state table: for each state, the requests it accepts, the handler
(``handlers``) and the states the handler may lead to (Ended is always possible). A request not
in the table gets FAILED_SequenceError. docs/sessions.md draws this table.

The sequence (ISO 15118-20 clause 8.8, message sequencing): SupportedAppProtocol →
SessionSetup → AuthorizationSetup → CertificateInstallation* (Plug & Charge without a contract) →
Authorization (repeated while EVSEProcessing=Ongoing) →
ServiceDiscovery → ServiceDetail* → ServiceSelection → ChargeParameterDiscovery →
ScheduleExchange → (DC: CableCheck*, PreCharge*) → PowerDelivery(Start) → ChargeLoop* →
PowerDelivery(Stop) → (DC: WeldingDetection*) → SessionStop.
"""

from __future__ import annotations

from iso15118.statetable import StateTable, Transition as T

from .context import State as S
from .handlers import (ac_charge_loop, ac_charge_parameter_discovery, authorization, authorization_setup,
                       dc_cable_check, dc_charge_loop, dc_charge_parameter_discovery, dc_precharge,
                       dc_welding_detection, fault_guard, power_delivery, power_delivery_in_loop, schedule_exchange,
                       service_detail, service_discovery, service_selection, session_setup, session_stop)
from .pnc import certificate_installation
from .sap import supported_app_protocol

TABLE = StateTable("SECC ISO 15118-20", {
    (S.WAIT_SAP, "supportedAppProtocolReq"): T(supported_app_protocol, S.WAIT_SESSION_SETUP),
    (S.WAIT_SESSION_SETUP, "SessionSetupReq"): T(session_setup, S.WAIT_AUTH_SETUP),
    (S.WAIT_AUTH_SETUP, "AuthorizationSetupReq"): T(authorization_setup, S.WAIT_AUTH),
    (S.WAIT_AUTH, "CertificateInstallationReq"): T(certificate_installation, S.WAIT_AUTH),
    (S.WAIT_AUTH, "AuthorizationReq"): T(authorization, S.WAIT_AUTH, S.WAIT_SERVICE_DISCOVERY, S.WAIT_CPD,
                                         S.WAIT_SESSION_STOP),
    (S.WAIT_SERVICE_DISCOVERY, "ServiceDiscoveryReq"): T(service_discovery, S.WAIT_SERVICE_SELECTION),
    (S.WAIT_SERVICE_SELECTION, "ServiceDetailReq"): T(service_detail, S.WAIT_SERVICE_SELECTION),
    (S.WAIT_SERVICE_SELECTION, "ServiceSelectionReq"): T(service_selection, S.WAIT_CPD),
    (S.WAIT_CPD, "DC_ChargeParameterDiscoveryReq"): T(dc_charge_parameter_discovery, S.WAIT_SCHEDULE),
    (S.WAIT_CPD, "AC_ChargeParameterDiscoveryReq"): T(ac_charge_parameter_discovery, S.WAIT_SCHEDULE),
    (S.WAIT_SCHEDULE, "ScheduleExchangeReq"): T(schedule_exchange, S.WAIT_CABLE_CHECK, S.WAIT_POWER_DELIVERY),
    (S.WAIT_CABLE_CHECK, "DC_CableCheckReq"): T(fault_guard(dc_cable_check), S.WAIT_CABLE_CHECK, S.WAIT_PRECHARGE),
    (S.WAIT_PRECHARGE, "DC_PreChargeReq"): T(fault_guard(dc_precharge), S.WAIT_PRECHARGE, S.WAIT_POWER_DELIVERY),
    (S.WAIT_POWER_DELIVERY, "DC_PreChargeReq"): T(fault_guard(dc_precharge), S.WAIT_PRECHARGE,
                                                  S.WAIT_POWER_DELIVERY),
    (S.WAIT_POWER_DELIVERY, "PowerDeliveryReq"): T(fault_guard(power_delivery), S.WAIT_POWER_DELIVERY,
                                                   S.CHARGE_LOOP, S.WAIT_WELDING, S.WAIT_SESSION_STOP,
                                                   S.WAIT_SCHEDULE),
    (S.CHARGE_LOOP, "DC_ChargeLoopReq"): T(fault_guard(dc_charge_loop), S.CHARGE_LOOP),
    (S.CHARGE_LOOP, "AC_ChargeLoopReq"): T(fault_guard(ac_charge_loop), S.CHARGE_LOOP),
    (S.CHARGE_LOOP, "PowerDeliveryReq"): T(fault_guard(power_delivery_in_loop), S.CHARGE_LOOP, S.WAIT_WELDING,
                                           S.WAIT_SESSION_STOP, S.WAIT_SCHEDULE),
    (S.WAIT_WELDING, "DC_WeldingDetectionReq"): T(dc_welding_detection, S.WAIT_WELDING),
    (S.WAIT_WELDING, "SessionStopReq"): T(session_stop, S.WAIT_SERVICE_DISCOVERY),
    (S.WAIT_SESSION_STOP, "SessionStopReq"): T(session_stop, S.WAIT_SERVICE_DISCOVERY),
    (S.WAIT_SERVICE_DISCOVERY, "SessionStopReq"): T(session_stop, S.WAIT_SERVICE_DISCOVERY),
    (S.WAIT_SERVICE_SELECTION, "SessionStopReq"): T(session_stop, S.WAIT_SERVICE_DISCOVERY),
    (S.WAIT_POWER_DELIVERY, "SessionStopReq"): T(session_stop, S.WAIT_SERVICE_DISCOVERY),
}, end=S.ENDED)
