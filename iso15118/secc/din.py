"""The charger's DIN SPEC 70121 state table (DC only, EIM only, no TLS): for each state, the
requests it accepts, the handler (``handlers_iso2``, shared with ISO 15118-2) and the states it
may lead to (Ended is always possible). A request not in the table gets FAILED_SequenceError.
docs/sessions.md draws this table.

The sequence (DIN SPEC 70121:2014 clause 9.4, message sequencing): SupportedAppProtocol →
SessionSetup → ServiceDiscovery → ServicePaymentSelection → ContractAuthentication (repeated while
EVSEProcessing=Ongoing) → ChargeParameterDiscovery → CableCheck* → PreCharge* →
PowerDelivery(ReadyToChargeState=true) → CurrentDemand* → PowerDelivery(ReadyToChargeState=false)
→ WeldingDetection* → SessionStop.
"""

from __future__ import annotations

from iso15118.statetable import StateTable, Transition as T

from .context import State as S
from .handlers_iso2 import (authorization, cable_check, din_charge_parameter_discovery, din_current_demand,
                            din_power_delivery, din_power_delivery_in_loop, fault_guard, precharge,
                            service_discovery, service_payment_selection, session_setup, session_stop,
                            welding_detection)
from .sap import supported_app_protocol

TABLE = StateTable("SECC DIN SPEC 70121", {
    (S.WAIT_SAP, "supportedAppProtocolReq"): T(supported_app_protocol, S.WAIT_SESSION_SETUP),
    (S.WAIT_SESSION_SETUP, "SessionSetupReq"): T(session_setup, S.WAIT_SERVICE_DISCOVERY),
    (S.WAIT_SERVICE_DISCOVERY, "ServiceDiscoveryReq"): T(service_discovery, S.WAIT_SERVICE_SELECTION),
    (S.WAIT_SERVICE_SELECTION, "ServicePaymentSelectionReq"): T(service_payment_selection, S.WAIT_AUTH),
    (S.WAIT_AUTH, "ContractAuthenticationReq"): T(authorization, S.WAIT_AUTH, S.WAIT_CPD),
    (S.WAIT_CPD, "ChargeParameterDiscoveryReq"): T(din_charge_parameter_discovery, S.WAIT_CABLE_CHECK),
    (S.WAIT_CABLE_CHECK, "CableCheckReq"): T(fault_guard(cable_check), S.WAIT_CABLE_CHECK, S.WAIT_PRECHARGE),
    (S.WAIT_PRECHARGE, "PreChargeReq"): T(fault_guard(precharge), S.WAIT_POWER_DELIVERY),
    (S.WAIT_POWER_DELIVERY, "PreChargeReq"): T(fault_guard(precharge), S.WAIT_POWER_DELIVERY),
    (S.WAIT_POWER_DELIVERY, "PowerDeliveryReq"): T(fault_guard(din_power_delivery), S.CHARGE_LOOP, S.WAIT_WELDING),
    (S.CHARGE_LOOP, "CurrentDemandReq"): T(fault_guard(din_current_demand), S.CHARGE_LOOP),
    (S.CHARGE_LOOP, "PowerDeliveryReq"): T(fault_guard(din_power_delivery_in_loop), S.WAIT_WELDING),
    (S.WAIT_WELDING, "WeldingDetectionReq"): T(welding_detection, S.WAIT_WELDING),
    (S.WAIT_WELDING, "SessionStopReq"): T(session_stop),
}, end=S.ENDED)
