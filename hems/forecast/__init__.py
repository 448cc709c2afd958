"""The plan's inputs besides the tariff: the house's load learned from its own history
(``load.LoadHistory``, SQLite, weekday × quarter-hour blended with the last hour, BDEW H0
fallback in ``h0``) and solar (``solar``: a pvlib clear-sky model of the array corrected by what
was measured, or a file). Pure functions of data and a passed-in ``now``; pvlib is imported on
first use (docs/hems.md, "Forecasts")."""
