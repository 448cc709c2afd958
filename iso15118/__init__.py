"""ISO 15118 (-2, -20) and DIN SPEC 70121 for the charger and a simulated car.

``iso15118.exi`` is the schema-informed EXI codec; the transport, session state machines and
the simulator build on it.
"""
