"""The whole chain in memory (hems.chain): car ↔ charger ↔ station core ↔ the house's CSMS core on
a simulated clock, real bytes on every link. The reference day (hems.day): charged by day,
discharged into the house in the evening, a 10-minute CSMS outage during the discharge, one
re-plug."""

from __future__ import annotations

import pytest

from hems.day import CHARGE_W, DISCHARGE_W, SHORT, DayPlan, decisions, run_day
from ocpp_bridge import frames
from ocpp_bridge.rpc import schema_check

T0 = 1_811_808_000.0  # 2027-06-01T00:00Z
PLAN = DayPlan()
M = PLAN.marks()


def _between(rows, start, end):
    return [r for r in rows if T0 + start <= r["t"] < T0 + end]


@pytest.fixture(scope="module")
def day():
    return run_day(T0, keep_ocpp_text=True)


def test_the_day_follows_the_csms_and_falls_back_safely_while_it_is_away(day):
    chain, rows = day
    assert chain.answers == [{"status": "Accepted"}] * 4
    # night: idle; day: charging at the CSMS's 4 kW; evening: discharging 5 kW into the house
    assert all(abs(r["power_w"]) < 1 for r in _between(rows, 120, M["morning"]))
    charging = _between(rows, M["morning"] + 60, M["away"] - 60) + _between(rows, M["afternoon"] + 60, M["evening"])
    assert charging and all(abs(r["power_w"] - CHARGE_W) < 50 for r in charging)
    discharging = _between(rows, M["evening"] + 60, M["outage"]) + _between(rows, M["late"] + 60, M["late_night"])
    assert discharging and all(abs(r["power_w"] - DISCHARGE_W) < 50 for r in discharging)
    # the CSMS away: the profile holds for maxOfflineDuration, then the safe default (no discharge)
    held = _between(rows, M["outage"] + 5, M["outage"] + PLAN.max_offline - 5)
    assert held and all(r["power_w"] < -4900 and not r["online"] for r in held)
    safe = _between(rows, M["outage"] + PLAN.max_offline + 5, M["late"])
    assert safe and all(r["power_w"] >= 0 and r["source"] == "offline" for r in safe)
    # the car away at noon: nothing flows
    assert all(r["power_w"] == 0 for r in _between(rows, M["away"] + 30, M["afternoon"]))
    socs = [r["soc"] for r in rows if r["soc"] is not None]
    top = next(r["soc"] for r in rows if r["t"] >= T0 + M["evening"])
    assert socs[0] < top and socs[-1] < top  # charged by day, given to the house in the evening


def test_every_event_reaches_the_csms_in_order_and_marked_offline(day):
    chain, _ = day
    station = chain.csms.stations["CS001"]
    assert [e.result.reason for _, e in chain.sessions] == ["SessionStop Terminate"] * 2
    txs = station.transactions
    assert len(txs) == 2 and all(t.ended is not None and t.stopped_reason == "StoppedByEV" for t in txs)
    payloads = [frames.loads(f)[3] for _, d, f in chain.wire.ocpp if d == "cs→csms" and '"TransactionEvent"' in f]
    for tx in txs:
        seqs = [p["seqNo"] for p in payloads if p["transactionInfo"]["transactionId"] == tx.id]
        assert seqs == list(range(len(seqs))) and len(seqs) > 10  # in order, none lost, none twice
    offline = [p for p in payloads if p.get("offline")]
    assert offline and all(T0 + M["outage"] <= _stamp(p["timestamp"]) <= T0 + M["late"] for p in offline)
    assert chain.core.store.head() is None  # nothing left behind


def test_every_ocpp_frame_is_schema_valid(day):
    chain, _ = day
    actions, checked = {}, 0
    for _, direction, text in chain.wire.ocpp:
        frame = frames.loads(text)
        if frame[0] == frames.CALL:
            actions[frame[1]] = frame[2]
            schema_check(frame[2], frame[3])
        elif frame[0] == frames.CALLRESULT:
            schema_check(actions[frame[1]], frame[2], "Response")
        else:
            pytest.fail(f"unexpected frame {text[:200]}")
        checked += 1
    assert checked > 1000


def test_the_short_day_decides_the_same(day):
    """The same day in seconds (hems.day.SHORT: what the real-socket run uses) goes through the
    same decisions."""
    _, rows = day
    _, short_rows = run_day(T0, plan=SHORT)
    assert decisions(rows, PLAN, T0) == decisions(short_rows, SHORT, T0) == EXPECTED


EXPECTED = [("night", "profile", 0), ("morning", "profile", 4), ("away", "default", 0), ("afternoon", "profile", 4),
            ("evening", "profile", -5), ("outage", "offline", 0), ("late", "profile", -5),
            ("late_night", "profile", 0)]


def _stamp(text: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
