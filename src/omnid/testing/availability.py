"""Lookup availability as a client sees it: a poller asking fixed keys from a thread, and the
share of 200 answers and longest gap over time windows."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from omnid.testing.workers import get_json


@dataclass
class LookupPoller:
    """Asks the lookup API about fixed keys over and over from a thread, keeping every answer
    ((monotonic time, HTTP status, stale flag) per key): what availability means to a client.
    `urls` maps a key's name to the URL asked for it; status 0 means nothing answered."""

    urls: Mapping[str, str]
    token: str
    timeout_s: float = 5.0
    answers: dict[str, list[tuple[float, int, bool]]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def __enter__(self) -> LookupPoller:
        self._thread = threading.Thread(target=self._poll, name="lookup-poller", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)

    def _poll(self) -> None:
        while not self._stop.is_set():
            for name, url in self.urls.items():
                body, status = get_json(url, timeout=self.timeout_s, token=self.token)
                stale = bool(body and body.get("stale"))
                self.answers.setdefault(name, []).append((time.monotonic(), status, stale))
            time.sleep(0.05)

    def availability(self, names: Iterable[str] | None = None) -> dict[str, Any]:
        """Over `names` (all keys by default) and the whole polling: see availability_over."""
        chosen = list(self.answers) if names is None else list(names)
        return availability_over(self.answers, [(name, -math.inf, math.inf) for name in chosen])


def availability_over(
    answers: Mapping[str, list[tuple[float, int, bool]]],
    spans: Iterable[tuple[str, float, float]],
) -> dict[str, Any]:
    """Fraction of the polls that were answered 200 (fresh or stale) and the longest time a key
    went without a 200 (from its last 200, or the span's first poll, to a failed poll after
    it), over the polls of each (key, since, until) span: a key during a time window."""
    total = ok = stale = 0
    longest_gap = 0.0
    for name, since, until in spans:
        last_ok: float | None = None
        for at, status, was_stale in answers.get(name, []):
            if not since <= at < until:
                continue
            total += 1
            if last_ok is None:
                last_ok = at  # a window that opens on failures counts them from its start
            if status == 200:
                ok += 1
                stale += was_stale
                last_ok = at
            else:
                longest_gap = max(longest_gap, at - last_ok)
    return {
        "polls": total,
        "answered_200": round(ok / total, 4) if total else None,
        "stale_200": round(stale / total, 4) if total else None,
        "longest_gap_s": round(longest_gap, 2),
    }
