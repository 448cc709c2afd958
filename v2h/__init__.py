"""The v2h application: the ``v2h`` command that composes the libraries (iso15118, ocpp_bridge,
hems). Nothing in the libraries imports this package."""
