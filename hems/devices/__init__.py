"""Devices: the interfaces the site controller's runner talks to, their simulators, and the
Modbus TCP drivers (``modbus_*.py``, the only modules here that do I/O)."""
