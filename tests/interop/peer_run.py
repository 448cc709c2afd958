"""Start the peer's SECC or EVCC (run by the peer environment's python, cwd holding its .env).

    peer_run.py secc|evcc [EVCC_CONFIG.json] [--tls-groups-iso20] [--ev-voltage=V] [--evse-follows-target]
                          [--precharge-waits]

``--tls-groups-iso20`` corrects one peer defect before it starts: its TLS contexts call
``set_ecdh_curve("prime256v1")``, which with OpenSSL 3 restricts the key-exchange groups to
secp256r1 even for ISO 15118-20, where only secp521r1 and X448 are allowed. The flag makes that
call select secp521r1 instead; without it the peer cannot complete a -20 handshake with a
standard charger or car (tests/interop/test_sessions.py checks that our side refuses it).

``--ev-voltage=V`` gives the peer's simulated car a battery at V volts. Its stock simulator
(``SimEVController``, the peer's stand-in for a vehicle's hardware) reports 20 kV as present and
target voltage, which no DC charger can pre-charge to; ours refuses it (FAILED, nothing energised).

``--evse-follows-target`` makes the peer's simulated power stage (``SimEVSEController``) output
the voltage it is asked for, and 0 V once charging stops. Its stock one ignores every target and
reports 1 V, so no car can finish pre-charge against it; ours then stops before closing its
contactors.

``--precharge-waits`` makes the peer's simulated car end pre-charge when the charger's output is
within 10 V of its battery: for DIN 70121 and ISO 15118-2 the voltage it asked for, for ISO
15118-20 its present voltage (``--ev-voltage``). Its stock one ends pre-charge when the output
equals its present voltage exactly, or after five PreCharge exchanges (counted over the whole
session) whatever the voltage, and goes on to PowerDelivery; ours refuses that start
(FAILED_PowerDeliveryNotApplied, nothing energised).
"""

from __future__ import annotations

import ssl
import sys


def _iso20_groups(self: ssl.SSLContext, name: str) -> None:
    _set_ecdh_curve(self, "secp521r1")


def main(argv: list[str]) -> None:
    args = [a for a in argv if not a.startswith("--")]
    if "--tls-groups-iso20" in argv:
        ssl.SSLContext.set_ecdh_curve = _iso20_groups
    for a in argv:
        if a.startswith("--ev-voltage="):
            _set_ev_voltage(float(a.partition("=")[2]))
    if "--evse-follows-target" in argv:
        _evse_follows_target()
    if "--precharge-waits" in argv:
        _precharge_waits()
    role = args[0]
    sys.argv = [f"iso15118.{role}.main", *args[1:]]
    if role == "secc":
        from iso15118.secc.main import run
    elif role == "evcc":
        from iso15118.evcc.main import run
    else:
        raise SystemExit(f"unknown role {role!r}")
    run()


def _set_ev_voltage(volts: float) -> None:
    from iso15118.evcc.controller.simulator import SimEVController
    from iso15118.shared.messages.iso15118_20.common_types import RationalNumber

    async def voltage(self) -> RationalNumber:
        return RationalNumber(exponent=0, value=int(volts))

    SimEVController.get_present_voltage = voltage
    SimEVController.get_target_voltage = voltage


def _evse_follows_target() -> None:
    from iso15118.secc.controller.simulator import SimEVSEController

    async def send_charging_command(self, ev_target_voltage=None, ev_target_current=None,
                                    is_precharge=False, is_session_bpt=False):
        if ev_target_voltage is not None:
            self.evse_data_context.present_voltage = ev_target_voltage
        if ev_target_current is not None:
            self.evse_data_context.present_current = ev_target_current

    async def stop_output(self, *args) -> None:
        if not args or args[0] is False:
            self.evse_data_context.present_voltage = 0
            self.evse_data_context.present_current = 0

    SimEVSEController.send_charging_command = send_charging_command
    SimEVSEController.set_hlc_charging = stop_output
    SimEVSEController.stop_charger = stop_output


def _precharge_waits() -> None:
    from iso15118.evcc.controller.simulator import SimEVController
    from iso15118.shared.messages.iso15118_20.common_types import RationalNumber

    async def is_precharged(self, present_voltage_evse) -> bool:
        if not isinstance(present_voltage_evse, RationalNumber):  # DIN, -2: asked once per PreChargeRes
            target = self.dc_ev_charge_params.dc_target_voltage.get_decimal_value()
            return abs(present_voltage_evse.get_decimal_value() - target) <= 10
        # -20: against the battery's own voltage. Its -20 state asks twice per DC_PreChargeRes (go on
        # to PowerDelivery? if not, is the next DC_PreChargeReq Finished?): the first match answers
        # no, so that it sends DC_PreChargeReq EVProcessing=Finished before PowerDelivery, as it
        # does after its five exchanges
        battery = (await self.get_present_voltage()).get_decimal_value()
        if abs(present_voltage_evse.get_decimal_value() - battery) > 10:
            return False
        self.v2h_matches = getattr(self, "v2h_matches", 0) + 1
        return self.v2h_matches >= 2

    SimEVController.is_precharged = is_precharged


_set_ecdh_curve = ssl.SSLContext.set_ecdh_curve

if __name__ == "__main__":
    main(sys.argv[1:])
