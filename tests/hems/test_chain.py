"""The whole chain in memory (hems.chain): car ↔ charger ↔ station core ↔ the house's CSMS core on
a simulated clock, real bytes on every link. The reference day (hems.day): charged by day,
discharged into the house in the evening, hourly setpoint changes, a 10-minute CSMS outage
during the discharge, one re-plug."""

from __future__ import annotations

import pytest

from hems.day import HOUR, MAX_OFFLINE, OUTAGE, REPLUG, DayPlan, run_day
from ocpp_bridge import frames
from ocpp_bridge.rpc import schema_check

T0 = 1_811_808_000.0  # 2027-06-01T00:00Z


def _between(rows, start, end):
    return [r for r in rows if T0 + start <= r["t"] < T0 + end]


@pytest.fixture(scope="module")
def day():
    return run_day(T0, keep_ocpp_text=True)


def test_the_day_follows_the_csms_and_falls_back_safely_while_it_is_away(day):
    chain, rows = day
    assert all(a == {"status": "Accepted"} for a in chain.answers) and len(chain.answers) == 4
    # night: idle; day: charging at the CSMS's 4 kW; evening: discharging 5 kW into the house
    assert all(abs(r["power_w"]) < 1 for r in _between(rows, 120, 8 * HOUR))
    charging = _between(rows, 8 * HOUR + 60, REPLUG[0] - 60) + _between(rows, REPLUG[1] + 60, 17 * HOUR)
    assert charging and all(abs(r["power_w"] - 4000) < 50 for r in charging)
    discharging = _between(rows, 17 * HOUR + 60, OUTAGE[0]) + _between(rows, OUTAGE[1] + 60, 23 * HOUR)
    assert discharging and all(abs(r["power_w"] + 5000) < 50 for r in discharging)
    # the CSMS away: the profile holds for maxOfflineDuration, then the safe default (no discharge)
    held = _between(rows, OUTAGE[0] + 5, OUTAGE[0] + MAX_OFFLINE - 5)
    assert held and all(r["power_w"] < -4900 and not r["online"] for r in held)
    safe = _between(rows, OUTAGE[0] + MAX_OFFLINE + 5, OUTAGE[1])
    assert safe and all(r["power_w"] >= 0 and r["source"] == "offline" for r in safe)
    # the car between its two sessions: nothing flows
    assert all(r["power_w"] == 0 for r in _between(rows, REPLUG[0] + 30, REPLUG[1]))
    socs = [r["soc"] for r in rows if r["soc"] is not None]
    noon = next(r["soc"] for r in rows if r["t"] >= T0 + 16.9 * HOUR)
    assert socs[0] < noon and socs[-1] < noon  # charged by day, given to the house in the evening


def test_every_event_reaches_the_csms_in_order_and_marked_offline(day):
    chain, _ = day
    station = chain.csms.stations["CS001"]
    assert [len(s.trace) > 0 for s, _ in chain.sessions] == [True, True]
    assert [e.result.reason for _, e in chain.sessions] == ["SessionStop Terminate"] * 2
    txs = station.transactions
    assert len(txs) == 2 and all(t.ended is not None and t.stopped_reason == "StoppedByEV" for t in txs)
    events = [f for _, d, f in chain.wire.ocpp if d == "cs→csms" and '"TransactionEvent"' in f]
    payloads = [frames.loads(f)[3] for f in events]
    for tx in txs:
        seqs = [p["seqNo"] for p in payloads if p["transactionInfo"]["transactionId"] == tx.id]
        assert sorted(set(seqs)) == list(range(len(set(seqs)))) and seqs[0] == 0
    offline = [p for p in payloads if p.get("offline")]
    assert offline and all(T0 + OUTAGE[0] <= _stamp(p["timestamp"]) <= T0 + OUTAGE[1] for p in offline)
    assert not chain.core.store.head()  # nothing left behind


def test_every_ocpp_frame_is_schema_valid(day):
    chain, _ = day
    actions = {}
    checked = 0
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


def _stamp(text: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_a_shortened_day_decides_the_same(day):
    """The same scenario at 1/20 of the time gives the same sequence of decisions (the base of
    the comparison with a run over real sockets)."""
    chain, rows = day
    short_chain, short_rows = run_day(T0, plan=DayPlan(scale=0.05))
    assert _decisions(rows) == _decisions(short_rows)


def _decisions(rows) -> list[tuple[str, int]]:
    out = []
    for r in rows:
        key = (r["source"], int(round(r["power_w"] / 1000.0)))
        if not out or out[-1] != key:
            out.append(key)
    return out
