"""The charging station's OCPP 2.1 client and the SECC ↔ OCPP mapping (not built yet)."""
