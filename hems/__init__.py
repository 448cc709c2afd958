"""The home energy manager: CSMS, transfer switch, loads, planner, forecast (not built yet)."""
