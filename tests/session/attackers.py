"""Cars that break the rules on purpose, for the in-memory session tests (``run_pair``).

Each is the real ``EVCCSession`` with one response handler replaced, so everything else it
sends is a correct -20 message."""

from __future__ import annotations

from iso15118.evcc import EVCCSession
from iso15118.units import val


class EarlyPreChargeCar(EVCCSession):
    """Ends PreCharge without waiting for the charger's output to reach its battery: it sends
    PreCharge(Finished) as soon as the output is within ``window`` volts of its battery (None:
    at the first answer, whatever the voltage) and then PowerDelivery(Start), closing its
    contactors. An independent car did this to ``v2h secc``: Start accepted with 39 V present
    against its 400 V."""

    def __init__(self, *args, window: float | None = None, **kw):
        super().__init__(*args, **kw)
        self.window = window
        self.precharge_voltages: list[float] = []  # EVSEPresentVoltage of each DC_PreChargeRes
        self.responses = {**self.responses, "DC_PreChargeRes": self._on_precharge}

    def _on_precharge(self, s, res, now):
        present = val(res.EVSEPresentVoltage)
        self.precharge_voltages.append(present)
        if self.precharge_finished:  # our Finished was answered: close the contactors, go
            self.precharge_finished = False
            self.contactors_closed = True
            return self.power_delivery_req(now, "Start")
        if self.window is None or abs(present - self.battery.voltage()) <= self.window:
            self.precharge_finished = True
            return self.precharge_req(now, "Finished")
        self._later(now + self.config.poll_interval, lambda t: self.precharge_req(t))
        return None
