"""The energy manager's asyncio adapters: the OCPP 2.1 server the chargers connect to."""
