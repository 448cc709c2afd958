"""GetVariables / SetVariables / GetBaseReport against a real CSMS, values applied at once and
kept across a restart."""

from __future__ import annotations

import asyncio

from ocpp_bridge.device_model import DeviceModel, standard_variables
from ocpp_bridge.outbox import Outbox
from ocpp_bridge.station import ChargingStation, StationConfig

from .csms import CSMS

PASSWORD = "a-very-secret-passphrase"


def _var(component, name, value=None, instance=None):
    item = {"component": {"name": component}, "variable": {"name": name, **({"instance": instance} if instance else {})}}
    if value is not None:
        item["attributeValue"] = value
    return item


async def _station(csms, db):
    cs = ChargingStation(StationConfig("CS200", csms.url(), password=PASSWORD, retry_backoff_min=0.05,
                                       retry_backoff_random=0.05), Outbox(db))
    task = asyncio.ensure_future(cs.run())
    await csms.wait_for(lambda c: "CS200" in c.connections and c.actions("BootNotification"))
    await asyncio.sleep(0.05)
    return cs, task


def test_set_get_and_apply_at_once(tmp_path):
    async def run():
        csms = await CSMS(passwords={"CS200": PASSWORD}, heartbeat_interval=300).start()
        cs, task = await _station(csms, tmp_path / "cs.db")
        got_boot = await csms.send_call("CS200", "GetVariables", {"getVariableData": [
            _var("OCPPCommCtrlr", "HeartbeatInterval"), _var("SecurityCtrlr", "SecurityProfile")]})
        csms.passwords["CS200"] = "another-secret-passphrase"  # the station reconnects with it at once
        res = await csms.send_call("CS200", "SetVariables", {"setVariableData": [
            _var("OCPPCommCtrlr", "HeartbeatInterval", "1"),
            _var("OCPPCommCtrlr", "HeartbeatInterval", "soon"),
            _var("SecurityCtrlr", "SecurityProfile", "3"),
            _var("SecurityCtrlr", "NoSuchVariable", "1"),
            _var("NoSuchCtrlr", "Enabled", "true"),
            _var("SecurityCtrlr", "BasicAuthPassword", "another-secret-passphrase"),
            _var("TxCtrlr", "TxStartPoint", "DataSigned")]})
        for _ in range(200):  # the station closed to reconnect with the new password
            await asyncio.sleep(0.05)
            if csms.opened == 2 and "CS200" in csms.connections:
                break
        beats = len(csms.actions("Heartbeat"))
        await asyncio.sleep(2.3)
        beats = len(csms.actions("Heartbeat")) - beats
        got = await csms.send_call("CS200", "GetVariables", {"getVariableData": [
            _var("OCPPCommCtrlr", "HeartbeatInterval"), _var("SecurityCtrlr", "BasicAuthPassword"),
            _var("OCPPCommCtrlr", "MessageTimeout", instance="Default"),
            _var("OCPPCommCtrlr", "MessageTimeout")]})
        task.cancel()
        await csms.close()
        return got_boot, res, beats, got, cs

    got_boot, (kind, res), beats, (_, got), cs = asyncio.run(run())
    assert [r["attributeValue"] for r in got_boot[1]["getVariableResult"]] == ["300", "1"]  # from the boot
    assert [r["attributeStatus"] for r in res["setVariableResult"]] == [
        "Accepted", "Rejected", "Rejected", "UnknownVariable", "UnknownComponent", "Accepted", "Rejected"]
    assert res["setVariableResult"][1]["attributeStatusInfo"]["reasonCode"] == "InvalidValue"
    assert res["setVariableResult"][2]["attributeStatusInfo"]["reasonCode"] == "ReadOnly"
    assert beats >= 2                                      # HeartbeatInterval=1 applied at once
    assert cs.config.password == "another-secret-passphrase"  # used at once (the station reconnected)
    results = got["getVariableResult"]
    assert results[0]["attributeValue"] == "1"
    assert results[1]["attributeStatus"] == "Rejected" and "attributeValue" not in results[1]  # write-only
    assert results[2]["attributeValue"] == "30" and results[3]["attributeStatus"] == "UnknownVariable"


def test_values_set_by_the_csms_survive_a_restart(tmp_path):
    db = tmp_path / "cs.db"

    async def run():
        csms = await CSMS(passwords={"CS200": PASSWORD}).start()
        cs, task = await _station(csms, db)
        await csms.send_call("CS200", "SetVariables", {"setVariableData": [
            _var("OCPPCommCtrlr", "RetryBackOffRepeatTimes", "7"),
            _var("OCPPCommCtrlr", "MessageAttempts", "5", instance="TransactionEvent")]})
        task.cancel()
        await csms.close()

    asyncio.run(run())
    outbox = Outbox(db)
    config = StationConfig("CS200", "ws://127.0.0.1:9", password=PASSWORD)

    async def restart():
        return ChargingStation(config, outbox)

    cs = asyncio.run(restart())
    assert cs.config.retry_backoff_repeat == 7 and cs.config.message_attempts == 5
    assert cs.device_model.value("OCPPCommCtrlr", "RetryBackOffRepeatTimes") == "7"


def test_get_base_report(tmp_path):
    async def run():
        csms = await CSMS(passwords={"CS200": PASSWORD}).start()
        cs, task = await _station(csms, tmp_path / "cs.db")
        full = await csms.send_call("CS200", "GetBaseReport", {"requestId": 42, "reportBase": "FullInventory"})
        config = await csms.send_call("CS200", "GetBaseReport", {"requestId": 43, "reportBase": "ConfigurationInventory"})
        summary = await csms.send_call("CS200", "GetBaseReport", {"requestId": 44, "reportBase": "SummaryInventory"})
        await csms.wait_for(lambda c: any(r.payload["requestId"] == 43 and not r.payload["tbc"]
                                          for r in c.actions("NotifyReport")))
        task.cancel()
        await csms.close()
        return full, config, summary, csms, cs

    full, config, summary, csms, cs = asyncio.run(run())
    assert full == config == (3, {"status": "Accepted"}) and summary[1]["status"] == "NotSupported"
    reports = [r.payload for r in csms.actions("NotifyReport") if r.payload["requestId"] == 42]
    assert [r["seqNo"] for r in reports] == list(range(len(reports))) and len(reports) >= 2
    assert [r["tbc"] for r in reports] == [True] * (len(reports) - 1) + [False]
    items = [d for r in reports for d in r["reportData"]]
    assert len(items) == len(cs.device_model.variables)
    names = {(d["component"]["name"], d["variable"]["name"]) for d in items}
    for required in [("OCPPCommCtrlr", "HeartbeatInterval"), ("SecurityCtrlr", "SecurityProfile"),
                     ("ISO15118Ctrlr", "SeccId"), ("V2XChargingCtrlr", "Enabled"), ("TxCtrlr", "TxStartPoint"),
                     ("SmartChargingCtrlr", "RateUnit"), ("SampledDataCtrlr", "TxUpdatedInterval")]:
        assert required in names
    password = next(d for d in items if d["variable"]["name"] == "BasicAuthPassword")
    assert "value" not in password["variableAttribute"][0]  # write-only values are never reported
    writable = [d for r in csms.actions("NotifyReport") if r.payload["requestId"] == 43
                for d in r.payload.get("reportData", [])]
    assert writable and all(d["variableAttribute"][0]["mutability"] != "ReadOnly" for d in writable)


def test_every_variable_checks_what_is_written():
    dm = DeviceModel(standard_variables(identity="CS", security_profile=1, secc_id="CS"),
                     Outbox(":memory:"))
    for v in dm.variables.values():
        assert v.check(v.default) is None or v.mutability != "ReadWrite" or v.name == "BasicAuthPassword", v
    hb = dm.variables[DeviceModel.key("OCPPCommCtrlr", "HeartbeatInterval")]
    assert hb.check("0") and hb.check("1.5") and hb.check("") and hb.check("30") is None
    pw = dm.variables[DeviceModel.key("SecurityCtrlr", "BasicAuthPassword")]
    assert pw.check("short") and pw.check("x" * 41) and pw.check("x" * 16) is None


def test_clock_aligned_meter_values(tmp_path):
    """AlignedDataCtrlr.Interval: MeterValues at every whole multiple of the interval, with or
    without a session; a new interval applies at once."""
    from datetime import datetime

    from iso15118.secc import SimulatedPowerStage
    from ocpp_bridge.bridge import OCPPBridge

    async def run():
        csms = await CSMS(passwords={"CS200": PASSWORD}).start()
        cs = ChargingStation(StationConfig("CS200", csms.url(), password=PASSWORD), Outbox(tmp_path / "cs.db"))
        bridge = OCPPBridge(SimulatedPowerStage(), cs)
        tasks = [asyncio.ensure_future(cs.run())]  # the bridge's timers run on the station's
        await csms.wait_for(lambda c: "CS200" in c.connections and c.actions("BootNotification"))
        answer = await csms.send_call("CS200", "SetVariables", {"setVariableData": [
            _var("AlignedDataCtrlr", "Interval", "1")]})
        await csms.wait_for(lambda c: len(c.actions("MeterValues")) >= 3, timeout=10)
        for t in tasks:
            t.cancel()
        await csms.close()
        return answer, csms

    answer, csms = asyncio.run(run())
    assert answer[1]["setVariableResult"][0]["attributeStatus"] == "Accepted"
    for mv in csms.actions("MeterValues")[:3]:
        sample = mv.payload["meterValue"][0]
        stamp = datetime.fromisoformat(sample["timestamp"].replace("Z", "+00:00")).timestamp()
        assert stamp % 1 < 0.2                                   # on the second
        values = {v["measurand"]: v for v in sample["sampledValue"]}
        assert values["Energy.Active.Import.Register"]["context"] == "Sample.Clock"
        assert set(values) >= {"Energy.Active.Export.Register", "Power.Active.Import", "Power.Active.Export"}
