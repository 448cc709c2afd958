"""Seeing what went over the wire: ``v2h trace decode`` reads a packet capture (pcap, pcapng)
and writes its V2G messages as JSON lines (TLS 1.3 decrypted with a key log); ``v2h trace show``
renders such JSON lines — from ``--log``, the demo or ``trace decode`` — as the readable trace.

``capture`` (packets, TCP reassembly), ``tls13`` (TLS records and TLS 1.3 decryption) and
``decode`` are pure: bytes and packets in, records out; ``cli`` reads the files."""
