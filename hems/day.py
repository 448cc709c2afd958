"""A reference day for the whole chain (``hems.chain``): a car plugged in all day while the house's
CSMS charges it by day and discharges it into the house in the evening, a 10-minute CSMS outage
during the discharge and one re-plug. Used by the tests (24 h in memory; the same decisions on a
short version over real sockets) and by the benchmark.

The day is a sequence of phases (``DayPlan``); ``SHORT`` is the same sequence in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from iso15118.evcc import Battery, EVCCConfig

from .chain import Chain
from .csms import central_setpoint

HOUR = 3600.0
CHARGE_W, DISCHARGE_W = 4000.0, -5000.0


@dataclass(frozen=True)
class DayPlan:
    """Phase lengths in seconds. The CSMS sends Idle at the start, +CHARGE_W when the night ends,
    DISCHARGE_W when the afternoon ends and Idle when the late evening ends; the car leaves at the
    end of the morning and is back after ``away``; the CSMS is away for ``outage`` after the
    evening; its profiles carry maxOfflineDuration ``max_offline``."""

    night: float = 8 * HOUR
    morning: float = 4 * HOUR
    away: float = 300.0
    afternoon: float = 5 * HOUR - 300.0
    evening: float = 2 * HOUR + 30.0
    outage: float = 600.0
    late: float = 4 * HOUR - 630.0
    late_night: float = HOUR
    max_offline: int = 60
    loop_period: float = 0.25
    settle: float = 30.0          # s after the start: the charger has booted, the car plugs in
    retry_backoff: float = 1.0    # s: the charger's RetryBackOffWaitMinimum (and random range)

    @property
    def length(self) -> float:
        return (self.night + self.morning + self.away + self.afternoon + self.evening + self.outage + self.late
                + self.late_night)

    def marks(self) -> dict[str, float]:
        """The phase boundaries, as offsets from the start of the day."""
        t, out = 0.0, {}
        for name in ("night", "morning", "away", "afternoon", "evening", "outage", "late", "late_night"):
            out[name] = t
            t += getattr(self, name)
        out["end"] = t
        return out

    def setpoint_changes(self) -> list[tuple[float, float]]:
        m = self.marks()
        return [(self.settle, 0.0), (m["morning"], CHARGE_W), (m["evening"], DISCHARGE_W), (m["late_night"], 0.0)]

    def car_config(self, start: float, end: float) -> EVCCConfig:
        return EVCCConfig(service="DC_BPT", control_mode="dynamic", loops=max(1, int((end - start) / self.loop_period)),
                          loop_period=self.loop_period, departure_in=max(1, int(self.length - start)))


SHORT = DayPlan(night=3, morning=4, away=3, afternoon=4, evening=3, outage=4, late=6, late_night=2, max_offline=1,
                loop_period=0.1, settle=1.5, retry_backoff=0.1)


def script(chain: Chain, plan: DayPlan, battery: Battery, t0: float) -> list[dict]:
    """Put the day into ``chain`` from ``t0``; returns the samples it will record."""
    answers: list[dict | None] = []
    chain.answers = answers  # type: ignore[attr-defined]
    m = plan.marks()
    for t, watts in plan.setpoint_changes():
        chain.at(t0 + t, lambda c, now, w=watts: c.send("SetChargingProfile", central_setpoint(
            w, max_offline_duration=plan.max_offline, discharge_limit_w=-11000.0), answers.append))
    # the first car's loops end one settle time early (a session takes a moment to set up before
    # its first loop); the second stays until just after the day's end
    first, second = (plan.settle, m["away"] - plan.settle), (m["afternoon"], m["end"] + plan.settle)
    chain.at(t0 + first[0], lambda c, now: c.plug(battery, plan.car_config(*first)))
    chain.at(t0 + second[0], lambda c, now: c.plug(battery, plan.car_config(*second)))
    chain.at(t0 + m["outage"], lambda c, now: c.csms_down())
    chain.at(t0 + m["late"], lambda c, now: c.csms_back())
    return chain.record_every(min(60.0, max(plan.loop_period * 4, plan.length / 1440)), t0 + m["end"])


def day_battery() -> Battery:
    return Battery(soc=40.0, capacity_kwh=100.0, min_soc=20.0)


def run_day(t0: float = 1_811_808_000.0, *, plan: DayPlan = DayPlan(), keep_ocpp_text: bool = False,
            battery: Battery | None = None) -> tuple[Chain, list[dict]]:
    """The day in memory, from ``t0`` (default 2027-06-01T00:00Z)."""
    chain = Chain(start=t0, default_setpoint_w=0.0, keep_ocpp_text=keep_ocpp_text, retry_backoff=plan.retry_backoff)
    rows = script(chain, plan, battery or day_battery(), t0)
    chain.run(t0 + plan.length + 4 * plan.settle)
    return chain, rows


def decisions(rows: list[dict], plan: DayPlan, t0: float) -> list[tuple[str, str, int]]:
    """What the charger was doing three quarters into each phase: (phase, the arbiter's source,
    power in kW). Two runs of the same day at different speeds must agree on this."""
    out = []
    for name, start in plan.marks().items():
        if name == "end":
            continue
        t = t0 + start + 0.75 * getattr(plan, name)
        r = min(rows, key=lambda r: abs(r["t"] - t))
        out.append((name, r["source"], int(round(r["power_w"] / 1000.0))))
    return out
