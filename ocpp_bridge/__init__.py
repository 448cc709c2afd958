"""The charging station's OCPP 2.1 client (in progress): the durable outbox (``outbox``) and the
connection to the CSMS with security profiles 1–3 (``station``). The SECC ↔ OCPP mapping, the
device model and the CSMS-initiated requests are not built yet."""
