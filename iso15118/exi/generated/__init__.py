"""Generated EXI codecs, one module per schema universe (see tools/generate.py)."""
UNIVERSES = ('apphand', 'din', 'iso2', 'iso20_cm', 'iso20_dc', 'iso20_ac', 'iso20_wpt', 'iso20_acdp', 'xmldsig')
