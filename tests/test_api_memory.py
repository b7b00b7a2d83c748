"""Memory is bounded whatever the batches (the faults issue, item 5): 8 concurrent ~1 MB
requests, each a batch of 16 PNGs of 4000x4000 (inside max_pixels), against a real `ecolens
serve` with 2 workers. By default the batch pixel limit refuses them before any decode (413);
with that limit raised they are all classified, one decode at a time per inference thread, and
the peak resident memory of the whole server (VmHWM of every process, from /proc) stays far
below the 1.17 GB the thread-per-request server reached.

The default server only: it measures resident memory, not the contract. The Flask server hands
large images to the same per-worker inference pool (edge/api/flask/bridge.py), and its 413 for
the batch pixel limit is the same code, checked in test_api_parity.py."""

from __future__ import annotations

import base64
import io
import json
import threading
from pathlib import Path

import numpy as np
import psutil
import pytest
import requests
from PIL import Image

from tests.support.api_server import ApiServer, auth_config, bearer

BATCH = 16
CONCURRENT = 8


@pytest.fixture(scope="module")
def batch_body() -> bytes:
    """16 different 4000x4000 PNGs that compress well: about 1 MB of JSON."""
    images = []
    for index in range(BATCH):
        pixels = np.full((4000, 4000, 3), (index * 13 % 256, 120, 200 - index * 7), dtype=np.uint8)
        pixels[::500, :, 0] = 255  # some structure, still highly compressible
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG", compress_level=9)
        images.append(base64.b64encode(buffer.getvalue()).decode())
    body = json.dumps({"images": images}).encode()
    assert 0.3e6 < len(body) < 2e6, len(body)
    return body


def peak_rss_mb(pid: int) -> float:
    """Sum of VmHWM (peak resident set) over the server process and all its children."""
    root = psutil.Process(pid)
    total_kb = 0
    for process in [root, *root.children(recursive=True)]:
        status = Path(f"/proc/{process.pid}/status").read_text()
        total_kb += int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])
    return total_kb / 1024


def post_concurrently(url: str, body: bytes) -> list[requests.Response]:
    responses: list[requests.Response] = []

    def one() -> None:
        headers = {**bearer(), "Content-Type": "application/json"}
        responses.append(requests.post(url + "/predict", data=body, headers=headers, timeout=300))

    threads = [threading.Thread(target=one) for _ in range(CONCURRENT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


def server_config(reference_model: Path, **limits: int) -> dict:
    return {
        "model": {"path": str(reference_model)},
        "server": {"workers": 2, "threads": 1},
        "auth": auth_config(),
        "limits": {"rate": "", "max_batch": BATCH, "max_pixels": 16_000_000, **limits},
    }


def test_huge_batches_are_refused_from_their_headers_by_default(tmp_path, reference_model, batch_body):
    with ApiServer(tmp_path, server_config(reference_model)) as api:
        before = peak_rss_mb(api.process.pid)
        responses = post_concurrently(api.url, batch_body)
        assert [r.status_code for r in responses] == [413] * CONCURRENT
        error = responses[0].json()["error"]
        assert error["code"] == "payload_too_large" and "max_batch_pixels" in error["message"]
        grown = peak_rss_mb(api.process.pid) - before
        assert grown < 150, f"peak RSS grew by {grown:.0f} MB for refused requests"


def test_huge_batches_allowed_are_classified_in_bounded_memory(tmp_path, reference_model, batch_body):
    config = server_config(reference_model, max_batch_pixels=BATCH * 16_000_000)
    with ApiServer(tmp_path, config) as api:
        before = peak_rss_mb(api.process.pid)
        responses = post_concurrently(api.url, batch_body)
        assert [r.status_code for r in responses] == [200] * CONCURRENT, responses[0].text[:300]
        assert all(len(r.json()) == BATCH for r in responses)
        peak = peak_rss_mb(api.process.pid)
        print(f"server peak RSS {before:.0f} MB idle -> {peak:.0f} MB under load")
        # 2 workers x 1 inference thread x one 48 MB decode (+ OpenCV's reduced copy), plus
        # the request bodies: about 150 MB over idle, never the 1.17 GB of the old server
        assert peak - before < 250, f"peak RSS grew by {peak - before:.0f} MB"
