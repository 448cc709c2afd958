"""The home energy manager. Built: the site controller (grid sensing, transfer switch, load
shedding, the island) in ``controller``, its invariants, simulated and Modbus devices, and the
scenario runner (docs/hems.md). Still to come: planner, forecast, the house's OCPP server."""
