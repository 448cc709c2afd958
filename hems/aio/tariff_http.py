"""Fetch a tariff from a JSON HTTP source (the I/O half; parsing and checks are ``hems.tariff``).

``await fetch_tariff(url, fmt=...)`` runs one GET in a worker thread (urllib: the energy manager
fetches prices a few times a day, no client library needed), reads at most
``hems.tariff.MAX_BYTES`` + 1 bytes (a larger answer is refused, never buffered whole), and hands
the body to ``hems.tariff.parse_json``. Network failures, HTTP errors and timeouts are
``TariffFetchError``; a body that is not a valid tariff is ``ConfigError`` naming the entry.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from typing import Any

from ..errors import HemsError
from ..tariff import MAX_BYTES, Tariff, parse_json


class TariffFetchError(HemsError):
    """The tariff source could not be read (network, HTTP status, timeout, size)."""


def _get(url: str, timeout_s: float) -> bytes:
    if not url.startswith(("http://", "https://")):
        raise TariffFetchError(f"{url!r}: want an http:// or https:// URL")
    req = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "v2h-hems"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            body = resp.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as e:
        raise TariffFetchError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        raise TariffFetchError(f"{url}: {getattr(e, 'reason', e)}") from None
    if len(body) > MAX_BYTES:
        raise TariffFetchError(f"{url}: the answer is larger than {MAX_BYTES} bytes")
    return body


async def fetch_tariff(url: str, *, fmt: str = "v2h", timeout_s: float = 10.0, **mapping: Any) -> Tariff:
    """GET ``url`` and parse it as a ``fmt`` tariff (``mapping``: the spot format's factors/adders)."""
    body = await asyncio.to_thread(_get, url, timeout_s)
    return parse_json(body, fmt, **mapping)
