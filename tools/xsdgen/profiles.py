"""Per-universe deviations from the literal EXI grammar of the pinned XSDs.

Every entry here exists because the reference vectors (tests/exi/vectors) prove that the
peers' codecs build the grammar that way; each is covered by a vector test and by a probe
of the EXIficient codec recorded in docs/exi.md.
"""

GRAMMAR_PROFILES: dict[str, dict] = {
    # ISO 15118-2: the EXIficient grammar (iso15118 0.31.2 EXICodec.jar, the codec of the public
    # vectors) codes the particles with maxOccurs 16, 20, 24, 255 and 1024 (Parameter,
    # SelectedService, RootCertificateID, ProfileEntry, ParameterSet, PMaxScheduleEntry,
    # SalesTariffEntry) as unbounded: a full list still offers SE in its last state. Lists with
    # maxOccurs <= 8 are coded as the spec says. The XSD bound is still enforced on both sides.
    "iso2": {"unbounded_above": 8},
}
