"""Simulated DC and AC power stages behind ``PowerStage`` (the same interface a hardware driver
implements); what decides above them is a ``Supervisor`` (``supervisor.LocalSupervisor`` for a
charger on its own, ``simulated_charger()`` for both together).

Physics, kept simple and monotonic in ``now``: the DC output voltage ramps towards its target
while the contactors are closed (precharge); once the car's contactors are closed (a target with
``ev_voltage``, PowerDelivery Start → Stop) the battery holds the output at its voltage and the
stage controls only the current; the current follows the target within the limits, energy is
integrated between measurements; isolation monitoring takes ``isolation_time``. Every change is
recorded in ``history``, including the voltages at the moment the car's battery is connected.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .controller import EVSELimits, IsolationStatus, Measurements, PowerCommand, StageHistory

VOLTAGE_RAMP = 400.0  # V/s while precharging


@dataclass
class SimulatedPowerStage:
    """A DC (``kind='DC'``) or AC (``kind='AC'``) charger that can discharge the car."""

    kind: str = "DC"
    stage_limits: EVSELimits = field(default_factory=EVSELimits)
    isolation_time: float = 0.5
    voltage_ramp: float = VOLTAGE_RAMP
    isolation_fault: bool = False
    history: StageHistory = field(default_factory=StageHistory)
    # simulated seconds per second of ``now`` for the energy meter (a demo's accelerated day: the
    # session's timers stay real, the energy that flows is counted as if the day ran)
    time_scale: float = 1.0

    def __post_init__(self):
        if not (isinstance(self.time_scale, (int, float)) and 0 < self.time_scale <= 1e6):
            raise ValueError(f"time_scale must be a number in (0, 1e6], got {self.time_scale!r}")
        self._m = Measurements()
        self._target = PowerCommand()
        self._t = None
        self._iso_started: float | None = None
        self.estopped: str | None = None

    # --- power electronics -------------------------------------------------------------------
    def limits(self) -> EVSELimits:
        return self.stage_limits

    def _advance(self, now: float) -> None:
        if self._t is None:
            self._t = now
        dt = max(0.0, now - self._t)
        self._t = now
        m = self._m
        if dt and m.power:
            wh = m.power * dt * self.time_scale / 3600.0
            if wh > 0:
                m.energy_imported_wh += wh
            else:
                m.energy_exported_wh -= wh
        if not m.contactors_closed:
            m.voltage = m.current = m.power = 0.0
            return
        if self.kind == "DC":
            if self._target.ev_voltage is not None:  # the car's contactors are closed: its battery sets the voltage
                m.voltage = self._target.ev_voltage
            else:
                step = self.voltage_ramp * dt
                diff = self._target.voltage - m.voltage
                m.voltage += max(-step, min(step, diff))
            lim = self.stage_limits
            cur = self._target.current
            cur = min(cur, lim.max_charge_current) if cur >= 0 else max(cur, -lim.max_discharge_current)
            m.current = cur
            m.power = m.voltage * m.current
        else:
            lim = self.stage_limits
            p = self._target.power
            p = min(p, lim.max_charge_power) if p >= 0 else max(p, -lim.max_discharge_power)
            m.power = p
            m.voltage = lim.nominal_voltage
            m.current = p / lim.nominal_voltage

    def measurements(self, now: float) -> Measurements:
        self._advance(now)
        m = self._m
        return Measurements(m.voltage, m.current, m.power, m.energy_imported_wh, m.energy_exported_wh,
                            m.contactors_closed)

    def close_contactors(self, now: float) -> bool:
        self._advance(now)
        if self.estopped:
            return False
        if not self._m.contactors_closed:
            self._m.contactors_closed = True
            self.history.add(now, "contactors", True)
        return True

    def open_contactors(self, now: float) -> None:
        self._advance(now)
        self._target = PowerCommand()
        if self._m.contactors_closed:
            self._m.contactors_closed = False
            self._m.voltage = self._m.current = self._m.power = 0.0
            self.history.add(now, "contactors", False)

    def start_isolation_check(self, now: float) -> None:
        if self._iso_started is None:
            self._iso_started = now

    def isolation_status(self, now: float) -> IsolationStatus:
        if self.isolation_fault:
            return IsolationStatus.FAULT
        if self._iso_started is None or now - self._iso_started < self.isolation_time:
            return IsolationStatus.ONGOING
        return IsolationStatus.VALID

    def set_target(self, command: PowerCommand, now: float) -> None:
        self._advance(now)
        if not self._m.contactors_closed and (command.current or command.power):
            raise RuntimeError("power target with open contactors")
        if command.ev_voltage is not None and self._target.ev_voltage is None:
            self.history.add(now, "ev_connected", (self._m.voltage, command.ev_voltage))
        self._target = command
        self.history.add(now, "target", command)
        self._advance(now)

    def de_energise(self, now: float) -> None:
        self._advance(now)
        self._target = PowerCommand()
        self._m.current = self._m.power = 0.0
        self.history.add(now, "deenergise")
        self.open_contactors(now)
        self._iso_started = None

    def emergency_stop(self, reason: str, now: float) -> None:
        self.estopped = reason or "emergency stop"
        self.history.add(now, "estop", reason)
        self.de_energise(now)

    def fault(self, now: float) -> str | None:
        if self.estopped:
            return f"emergency stop: {self.estopped}"
        if self.isolation_fault and self._m.contactors_closed:
            return "isolation fault"
        return None
