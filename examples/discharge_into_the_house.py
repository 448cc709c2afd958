#!/usr/bin/env python3
"""A car powers a house for an evening, simulated in a few seconds.

The charger (SECC) and the car (EVCC) are the same sans-I/O session objects the network
runners use; ``run_pair`` moves their V2GTP bytes in memory on a simulated clock. The house is
an energy manager deciding the setpoint: it asks the car for the house load (negative =
discharge) — the charger keeps every request within its own and the car's limits and stops at
the car's minimum state of charge.

    python examples/discharge_into_the_house.py
"""

from __future__ import annotations

import math

from iso15118.evcc import Battery, EVCCConfig, EVCCSession
from iso15118.pair import run_pair
from iso15118.secc import SECCConfig, SECCSession, simulated_charger


def house_load(t: float) -> float:
    """Watts the house draws, t seconds after 18:00: a base load with an evening peak."""
    return 600.0 + 2500.0 * math.exp(-((t / 3600.0 - 1.5) ** 2))


def main() -> None:
    charger_hw = simulated_charger(kind="DC", setpoint_w=lambda now: -house_load(now))  # stage + supervisor
    charger = SECCSession(charger_hw, SECCConfig(), now=0.0)
    battery = Battery(capacity_kwh=60.0, soc=45.0, min_soc=30.0)
    hours = 5
    car = EVCCSession(battery, EVCCConfig(service="DC_BPT", control_mode="dynamic", loop_period=1.0,
                                          loops=hours * 3600))
    run_pair(charger, car)
    r = car.result
    print(f"session: {r.reason}; {r.loops} charge loops ({r.loops / 3600:.1f} h, one per second)")
    print(f"the car gave {r.discharged_wh / 1000:.2f} kWh; SoC 45.0 % → {battery.soc:.1f} % "
          f"(it keeps {battery.min_soc:.0f} % for driving)")
    print(f"meter: {charger_hw.stage.measurements(1e9).energy_exported_wh / 1000:.2f} kWh exported to the house")


if __name__ == "__main__":
    main()
