"""A reference day for the whole chain (``hems.chain``): a car plugged in all day while the house's
CSMS charges it by day and discharges it into the house in the evening, with hourly setpoint
changes, a 10-minute CSMS outage during the discharge and one re-plug. Used by the tests (24 h in
memory, the same decisions on a shortened run over real sockets) and by the benchmark.

Times are offsets from the start of the day; ``scale`` shrinks them (a short run of the same
scenario).
"""

from __future__ import annotations

from dataclasses import dataclass

from iso15118.evcc import Battery, EVCCConfig

from .chain import Chain
from .csms import central_setpoint

HOUR = 3600.0
# the CSMS's setpoint per hour of the day (W, + charges the car, − discharges it into the house)
SETPOINTS = [0.0] * 8 + [4000.0] * 9 + [-5000.0] * 6 + [0.0]
OUTAGE = (19 * HOUR + 30, 19 * HOUR + 630)     # the CSMS is away 10 minutes during the discharge
REPLUG = (12 * HOUR, 12 * HOUR + 300)          # the car leaves at noon, back 5 minutes later
MAX_OFFLINE = 60                               # s: the profile's maxOfflineDuration


@dataclass(frozen=True)
class DayPlan:
    """The reference day, possibly shortened (``scale`` < 1: every time multiplied by it)."""

    scale: float = 1.0
    loop_period: float = 0.25

    def t(self, seconds: float) -> float:
        return seconds * self.scale

    def setpoint_changes(self) -> list[tuple[float, float]]:
        """(time, W) where the setpoint changes (plus the first hour)."""
        out = []
        for h, w in enumerate(SETPOINTS):
            if not out or out[-1][1] != w:
                out.append((self.t(h * HOUR), w))
        return out

    def loops(self, start: float, end: float) -> int:
        return max(1, int((self.t(end) - self.t(start)) / self.loop_period))

    def car_config(self, start: float, end: float) -> EVCCConfig:
        return EVCCConfig(service="DC_BPT", control_mode="dynamic", loops=self.loops(start, end),
                          loop_period=self.loop_period, departure_in=int(self.t(24 * HOUR - start)))


def script(chain: Chain, plan: DayPlan, battery: Battery, t0: float) -> list[dict]:
    """Put the reference day into ``chain`` from ``t0``; returns the samples it will record."""
    answers: list[dict | None] = []
    chain.answers = answers  # type: ignore[attr-defined]
    max_offline = max(1, int(MAX_OFFLINE * plan.scale))
    for t, watts in plan.setpoint_changes():
        t = max(t, plan.t(30))  # the first once the charger has booted
        chain.at(t0 + t, lambda c, now, w=watts: c.send("SetChargingProfile", central_setpoint(
            w, max_offline_duration=max_offline, discharge_limit_w=-11000.0), answers.append))
    chain.at(t0 + plan.t(60), lambda c, now: c.plug(battery, plan.car_config(60, REPLUG[0])))
    chain.at(t0 + plan.t(REPLUG[1]), lambda c, now: c.plug(battery, plan.car_config(REPLUG[1], 24 * HOUR - 60)))
    chain.at(t0 + plan.t(OUTAGE[0]), lambda c, now: c.csms_down())
    chain.at(t0 + plan.t(OUTAGE[1]), lambda c, now: c.csms_back())
    return chain.record_every(max(plan.loop_period, plan.t(60)), t0 + plan.t(24 * HOUR))


def run_day(t0: float = 1_811_808_000.0, *, plan: DayPlan = DayPlan(), keep_ocpp_text: bool = False,
            battery: Battery | None = None) -> tuple[Chain, list[dict]]:
    """The reference day in memory, from ``t0`` (default 2027-06-01T00:00Z)."""
    chain = Chain(start=t0, default_setpoint_w=0.0, keep_ocpp_text=keep_ocpp_text)
    battery = battery or Battery(soc=40.0, capacity_kwh=100.0, min_soc=20.0)
    rows = script(chain, plan, battery, t0)
    chain.run(t0 + plan.t(24 * HOUR) + 5)
    return chain, rows
