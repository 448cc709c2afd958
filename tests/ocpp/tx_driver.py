"""A charging station process for the kill -9 test: runs the OCPP client and raises the events of
one long transaction (Started, Updated × N-2, Ended), one every ``period`` seconds. It resumes
from the outbox after a restart: the next event is the transaction's next seqNo, which the outbox
stores in the same SQLite transaction as the event, so a kill at any moment neither loses nor
repeats an event.

    python -m tests.ocpp.tx_driver DB CSMS_URL STATION PASSWORD EVENTS PERIOD
"""

from __future__ import annotations

import asyncio
import sys

from ocpp_bridge.outbox import Outbox
from ocpp_bridge.station import ChargingStation, StationConfig, transaction_event

TX = "tx-kill-test"


async def main(db: str, url: str, station: str, password: str, events: int, period: float) -> None:
    outbox = Outbox(db)
    cs = ChargingStation(StationConfig(station, url, password=password, retry_backoff_min=0.05,
                                       retry_backoff_random=0.05, retry_backoff_repeat=2), outbox)
    runner = asyncio.ensure_future(cs.run())
    while (seq := outbox.next_seq(TX)) < events:
        kind = "Started" if seq == 0 else "Ended" if seq == events - 1 else "Updated"
        meter = [{"timestamp": "2026-11-26T12:00:00Z",
                  "sampledValue": [{"value": float(seq), "measurand": "Energy.Active.Export.Register"}]}]
        cs.enqueue("TransactionEvent", transaction_event(kind, "MeterValuePeriodic" if kind == "Updated" else
                                                         "EVDetected" if kind == "Started" else "EVDeparted",
                                                         TX, meter_value=meter,
                                                         stopped_reason="EVDisconnected" if kind == "Ended" else None))
        await asyncio.sleep(period)
    while len(outbox):
        await asyncio.sleep(0.05)
    print("all delivered", flush=True)
    runner.cancel()


if __name__ == "__main__":
    db, url, station, password, events, period = sys.argv[1:7]
    asyncio.run(main(db, url, station, password, int(events), float(period)))
