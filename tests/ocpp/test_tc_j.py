"""OCPP 2.0.1 part 6, charging-station test cases of block J (MeterValues), scripted as the OCA
test system runs them (tests/ocpp/octt.py). v2h's meter gives the energy registers (import and
export), the power both ways, and the car's SoC while a car is there."""

from __future__ import annotations

from datetime import datetime

from .octt import OCTT


def _t(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _measurands(o: OCTT, component: str, name: str) -> set[str]:
    return set(o.get_variable(component, name)["attributeValue"].split(",")) - {""}


def _sample_ok(sample: dict, measurands: set[str], context: str) -> None:
    """An element per configured measurand (Energy.Active.Import.Register may go without its name)."""
    got = {v.get("measurand", "Energy.Active.Import.Register") for v in sample["sampledValue"]}
    assert got == measurands, (got, measurands)
    assert all(v.get("context") == context for v in sample["sampledValue"]), sample


def _end_transaction(o: OCTT, started) -> dict:
    """ParkingBayUnoccupied through StopAuthorized (remote), EVConnectedPostSession, EVDisconnected."""
    tx_id = started["transactionInfo"]["transactionId"]
    assert o.ok("RequestStopTransaction", {"transactionId": tx_id})["status"] == "Accepted"
    triggers = ("MeterValuePeriodic", "ChargingRateChanged")
    assert o.expect("TransactionEvent", triggers=triggers)["triggerReason"] in triggers + ("RemoteStop",)
    o.run(3)
    o.unplug()
    ended = status = None
    while ended is None or status is None:  # EVDisconnected: the connector and the Ended event, any order
        msg = o.expect_any("TransactionEvent", "StatusNotification", triggers=triggers)
        if msg.action == "StatusNotification":
            status = msg
        elif msg["eventType"] == "Ended":
            ended = msg
    return ended.payload


def test_TC_J_01_CS():
    """Clock-aligned Meter Values - No transaction ongoing: three MeterValues, Sample.Clock, one
    element per AlignedDataMeasurands, timestamps AlignedDataInterval apart on the clock."""
    o = OCTT()
    assert o.set_variable("AlignedDataCtrlr", "Interval", "60") == "Accepted"
    measurands = _measurands(o, "AlignedDataCtrlr", "Measurands")
    got = [o.expect("MeterValues", timeout=70) for _ in range(3)]
    for mv in got:
        assert mv["evseId"] == 1
        _sample_ok(mv["meterValue"][0], measurands, "Sample.Clock")
    stamps = [_t(mv["meterValue"][0]["timestamp"]) for mv in got]
    assert all(s % 60 == 0 for s in stamps) and [b - a for a, b in zip(stamps, stamps[1:])] == [60, 60]


def test_TC_J_02_CS():
    """Clock-aligned Meter Values - Transaction ongoing (steps 1 and 2: MeterValues)."""
    o = OCTT()
    assert o.set_variable("AlignedDataCtrlr", "Interval", "60") == "Accepted"
    measurands = _measurands(o, "AlignedDataCtrlr", "Measurands")
    o.transaction()
    got = [o.expect("MeterValues", timeout=70) for _ in range(3)]
    for mv in got:
        _sample_ok(mv["meterValue"][0], measurands, "Sample.Clock")
    stamps = [_t(mv["meterValue"][0]["timestamp"]) for mv in got]
    assert [b - a for a, b in zip(stamps, stamps[1:])] == [60, 60]
    assert got[-1]["meterValue"][0]["sampledValue"][0]["value"] > 0 or "Power.Active.Import" in measurands


def test_TC_J_03_CS():
    """Clock-aligned Meter Values - EventType Ended: the samples of AlignedDataTxEndedInterval
    in the Ended event, Sample.Clock, AlignedDataTxEndedMeasurands."""
    o = OCTT()
    assert o.set_variable("AlignedDataCtrlr", "TxEndedInterval", "30") == "Accepted"
    measurands = _measurands(o, "AlignedDataCtrlr", "TxEndedMeasurands")
    started = o.transaction()
    o.run(100)                                                            # Transaction Duration
    ended = _end_transaction(o, started)
    clock = [mv for mv in ended["meterValue"] if mv["sampledValue"][0]["context"] == "Sample.Clock"]
    assert ended["meterValue"][0]["sampledValue"][0]["context"] == "Sample.Clock"
    assert len(clock) >= 3
    for mv in clock:
        _sample_ok(mv, measurands, "Sample.Clock")
    stamps = [_t(mv["timestamp"]) for mv in clock]
    assert all(s % 30 == 0 for s in stamps) and {b - a for a, b in zip(stamps, stamps[1:])} == {30}


def test_TC_J_06_CS():
    """Clock-aligned Meter Values - No Meter Values during transaction (AlignedDataSendDuringIdle
    true; the transaction's own measurand lists configured empty)."""
    o = OCTT()
    for component, name, value in (("AlignedDataCtrlr", "Interval", "30"), ("AlignedDataCtrlr", "SendDuringIdle", "true"),
                                   ("SampledDataCtrlr", "TxStartedMeasurands", ""),
                                   ("SampledDataCtrlr", "TxUpdatedMeasurands", ""),
                                   ("SampledDataCtrlr", "TxEndedMeasurands", ""),
                                   ("SampledDataCtrlr", "TxUpdatedInterval", "0")):
        assert o.set_variable(component, name, value) == "Accepted", name
    measurands = _measurands(o, "AlignedDataCtrlr", "Measurands")
    _sample_ok(o.expect("MeterValues", timeout=40)["meterValue"][0], measurands, "Sample.Clock")  # 1, 2
    o.background.discard("MeterValues")                                   # from now on every one counts
    started = o.transaction()                                             # 3
    o.run(35)                                                             # 4, 5: nothing
    ended = _end_transaction(o, started)                                  # 6
    assert "meterValue" not in ended
    _sample_ok(o.expect("MeterValues", timeout=40)["meterValue"][0], measurands, "Sample.Clock")  # 7, 8
    requests = [f for _, d, f in o.frames if d == "cs" and f[0] == 2]
    first = next(i for i, f in enumerate(requests) if f[2] == "TransactionEvent" and f[3]["eventType"] == "Started")
    last = next(i for i, f in enumerate(requests) if f[2] == "TransactionEvent" and f[3]["eventType"] == "Ended")
    during = requests[first:last + 1]
    assert not [f for f in during if f[2] == "MeterValues" or f[3].get("meterValue")], during


def test_TC_J_07_CS():
    """Sampled Meter Values - EventType Started - EVSE known: Transaction.Begin samples of
    SampledDataTxStartedMeasurands in Started."""
    o = OCTT()
    measurands = _measurands(o, "SampledDataCtrlr", "TxStartedMeasurands")
    started = o.transaction()
    assert started["meterValue"]
    _sample_ok(started["meterValue"][0], measurands, "Transaction.Begin")


def test_TC_J_09_CS():
    """Sampled Meter Values - EventType Updated: MeterValuePeriodic every
    SampledDataTxUpdatedInterval, Sample.Periodic, SampledDataTxUpdatedMeasurands."""
    o = OCTT()
    assert o.set_variable("SampledDataCtrlr", "TxUpdatedInterval", "20") == "Accepted"
    measurands = _measurands(o, "SampledDataCtrlr", "TxUpdatedMeasurands")
    o.transaction()
    got = []
    while len(got) < 3:
        msg = o.expect("TransactionEvent", timeout=30, triggers=("MeterValuePeriodic",))
        if msg["triggerReason"] == "MeterValuePeriodic":
            got.append(msg)
    for msg in got:
        _sample_ok(msg["meterValue"][0], measurands, "Sample.Periodic")
    stamps = [_t(m["timestamp"]) for m in got]
    assert [b - a for a, b in zip(stamps, stamps[1:])] == [20, 20]


def test_TC_J_10_CS():
    """Sampled Meter Values - EventType Ended: the samples of SampledDataTxEndedInterval
    (Sample.Periodic) and one Transaction.End in the Ended event."""
    o = OCTT()
    assert o.set_variable("SampledDataCtrlr", "TxEndedInterval", "20") == "Accepted"
    measurands = _measurands(o, "SampledDataCtrlr", "TxEndedMeasurands")
    started = o.transaction()
    o.run(70)
    ended = _end_transaction(o, started)
    contexts = [mv["sampledValue"][0]["context"] for mv in ended["meterValue"]]
    assert contexts[0] == "Sample.Periodic" and contexts.count("Transaction.End") == 1
    periodic = [mv for mv in ended["meterValue"] if mv["sampledValue"][0]["context"] == "Sample.Periodic"]
    assert len(periodic) >= 3
    for mv in periodic:
        _sample_ok(mv, measurands, "Sample.Periodic")
    stamps = [_t(mv["timestamp"]) for mv in periodic]
    assert {round(b - a, 3) for a, b in zip(stamps, stamps[1:])} == {20}
    end = next(mv for mv in ended["meterValue"] if mv["sampledValue"][0]["context"] == "Transaction.End")
    _sample_ok(end, measurands, "Transaction.End")


def test_idle_meter_values_forget_the_car():
    """After the car left, clock-aligned meter values carry no SoC (the departed car's)."""
    o = OCTT()
    assert o.set_variable("AlignedDataCtrlr", "Interval", "30") == "Accepted"
    assert o.set_variable("AlignedDataCtrlr", "Measurands", "Energy.Active.Import.Register,SoC") == "Accepted"
    started = o.transaction()
    o.run(40)
    assert o.bridge.soc is not None
    _end_transaction(o, started)
    later = o.expect("MeterValues", timeout=40)
    assert {v.get("measurand") for v in later["meterValue"][0]["sampledValue"]} == {"Energy.Active.Import.Register"}
