"""A realistic fleet in a real database, for the dashboard's tests and its screenshots in the
docs: 51 bins over the last 24 h with daily rhythms, different plastic rates, two model
versions mid-rollout, some offline or silent, one with a dirty lens (many uncertain), one whose
camera is down, one that lost results on the way (gaps in its seq numbers)."""

from __future__ import annotations

import math
import random
import time

from ecolens.fleet.storage import open_database
from ecolens.fleet.storage.store import ResultStore, StatusUpdate, StoredResult

HOUR_MS = 3_600_000


def demo_fleet(url: str, bins: int = 51, seed: int = 7, now_ms: int | None = None) -> dict[str, str]:
    """Writes the fleet; returns each bin's intended state (online/offline/stale/unknown)."""
    rng = random.Random(seed)
    now = now_ms or int(time.time() * 1000)
    database = open_database(url)
    store = ResultStore(database)
    states: dict[str, str] = {}
    for n in range(1, bins + 1):
        device_id = f"bin-{n:03d}"
        state = "offline" if n in (7, 23, 41) else "stale" if n == 15 else "unknown" if n == 33 else "online"
        states[device_id] = state
        plastic_rate = min(0.85, max(0.05, rng.gauss(0.32, 0.14)))
        uncertain_rate = 0.32 if n == 19 else rng.uniform(0.01, 0.08)
        version = "1.1.0" if n % 3 else "1.0.0"
        busy = rng.uniform(4, 40)  # items per hour at the daily peak
        silent_from = now - rng.randint(3, 9) * HOUR_MS if state in ("offline", "stale") else now
        results = []
        lost = {5, 6, 9} if n == 12 else set()  # bin-012's results 5, 6 and 9 never arrived
        for hour in range(24):
            start = now - (24 - hour) * HOUR_MS
            if start >= silent_from:
                break
            local_hour = (time.gmtime(start / 1000).tm_hour + 1) % 24
            rhythm = max(0.05, math.sin(math.pi * (local_hour - 6) / 16)) if 6 <= local_hour <= 22 else 0.05
            for _ in range(_poisson(rng, busy * rhythm)):
                seen = start + rng.randrange(HOUR_MS)
                if seen >= min(now, silent_from):
                    continue
                plastic = rng.random() < plastic_rate
                results.append(
                    StoredResult(
                        event_id=f"{device_id}-{len(results)}-{seen}",
                        device_id=device_id,
                        seen_ms=seen,
                        received_ms=seen + 40,
                        label="plastic" if plastic else "non_plastic",
                        confidence=round(rng.uniform(0.55, 0.99), 3),
                        uncertain=rng.random() < uncertain_rate,
                        inference_ms=round(rng.gauss(24, 3), 1),
                        frames=rng.randint(1, 4),
                        model_name="ecolens-plastic-lite0",
                        model_version=version,
                        model_sha256="a" * 64,
                        payload="{}",
                    )
                )
        results.sort(key=lambda r: r.seen_ms)
        numbered = [r._replace(seq=i) for i, r in enumerate(results, start=1)]
        results = [r for r in numbered if r.seq not in lost]
        if state in ("online", "unknown"):  # heard from within the last minutes: not stale
            seen = now - rng.randint(1, 20) * 60_000
            last = results[-1]
            results.append(
                last._replace(event_id=f"{device_id}-last", seen_ms=seen, received_ms=seen, seq=last.seq + 1)
            )
        statuses = []
        if state != "unknown":
            statuses.append(StatusUpdate(device_id, "online", now - 30 * HOUR_MS, "up"))
            if n % 10 == 4:  # a reboot yesterday evening
                statuses.append(StatusUpdate(device_id, "offline", now - 14 * HOUR_MS))
                statuses.append(StatusUpdate(device_id, "online", now - 13 * HOUR_MS + 7 * 60_000))
            if state == "offline":
                statuses.append(StatusUpdate(device_id, "offline", silent_from))
            if n == 28:  # the camera was unplugged 2 h ago; the bin still sends its queue
                statuses.append(StatusUpdate(device_id, "online", now - 2 * HOUR_MS, "down"))
        # status rows arrive in order, one batch each, as the subscriber would store them
        for status in statuses:
            store.write((), [status])
        store.write(results)
        if state == "stale":
            database.execute(
                "UPDATE devices SET status_ms = ?, last_result_ms = ? WHERE device_id = ?",
                (silent_from - 3 * HOUR_MS, silent_from, device_id),
            )
    database.close()
    return states


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method; enough for the small means used here."""
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
