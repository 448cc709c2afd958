"""A DIN 70121 or ISO 15118-2 car behind the OCPP bridge: the CSMS (a real one on the ``ocpp``
package, which checks every payload against the OCPP 2.1 schemas) gets NotifyEVChargingNeeds
with the AC or DC parameters the car gave and no V2X parameters, and the transaction of a car
that only charges."""

from __future__ import annotations

import asyncio

import pytest

from iso15118.evcc import Battery, EVCCConfig, EVCCSession
from iso15118.pair import run_pair
from iso15118.secc import EVSEController, SECCConfig, SECCSession, SimulatedPowerStage
from ocpp_bridge.bridge import OCPPBridge
from ocpp_bridge.outbox import Outbox
from ocpp_bridge.station import ChargingStation, StationConfig
from tests.ocpp.csms import CSMS

PASSWORD = "a-very-secret-passphrase"


@pytest.mark.parametrize("protocol,kind", [("din", "DC"), ("iso2", "DC"), ("iso2", "AC")])
def test_notify_ev_charging_needs_of_a_car_that_only_charges(tmp_path, protocol, kind):
    async def run():
        csms = await CSMS(passwords={"CS-ISO2": PASSWORD}).start()
        station = ChargingStation(StationConfig("CS-ISO2", csms.url(), password=PASSWORD), Outbox(tmp_path / "cs.db"))
        stage = SimulatedPowerStage(kind=kind)
        bridge = OCPPBridge(stage, station, default_setpoint_w=6000.0)
        task = asyncio.ensure_future(station.run())
        await csms.wait_for(lambda c: c.actions("BootNotification"))
        secc = SECCSession(EVSEController(stage, bridge), SECCConfig(), now=0.0, transport="tcp")
        car = EVCCSession(Battery(soc=40.0, capacity_kwh=50.0),
                          EVCCConfig(service=kind, protocols=(protocol,), loops=4))
        run_pair(secc, car)
        await csms.wait_for(lambda c: c.actions("NotifyEVChargingNeeds") and
                            any(e.payload["eventType"] == "Ended" for e in c.actions("TransactionEvent")))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await csms.close()
        return car.result, csms

    result, csms = asyncio.run(run())
    assert result.ok, result.reason
    needs = csms.actions("NotifyEVChargingNeeds")[0].payload["chargingNeeds"]
    assert needs["controlMode"] == "ScheduledControl" and "v2xChargingParameters" not in needs
    if kind == "AC":
        assert needs["requestedEnergyTransfer"] == "AC_three_phase"
        ac = needs["acChargingParameters"]
        assert ac["energyAmount"] == pytest.approx(20000) and ac["evMaxVoltage"] == pytest.approx(230)
        assert ac["evMaxCurrent"] == pytest.approx(11000 / 3 / 230, rel=0.01) and ac["evMinCurrent"] == 0
        assert "departureTime" in needs
    else:
        assert needs["requestedEnergyTransfer"] == "DC"
        dc = needs["dcChargingParameters"]
        assert dc["evMaxCurrent"] == 200 and dc["evMaxVoltage"] == 410 and dc["stateOfCharge"] == 40
        assert dc["evEnergyCapacity"] == 50000 and dc["energyAmount"] == pytest.approx(20000)
        assert dc["fullSoC"] == 100 and dc["bulkSoC"] == 80
    events = [e.payload for e in csms.actions("TransactionEvent")]
    assert [e["eventType"] for e in events][0] == "Started" and events[-1]["eventType"] == "Ended"
    assert any(e.get("transactionInfo", {}).get("chargingState") == "Charging" for e in events)
