"""The promise of `WatchdogSec=` in ecolens-edge.service: the daemon pings systemd only while its
frame loop moves, so a hung loop is restarted. Here the real daemon pings a real notify socket;
the frame loop is hung for real (a lock it takes on every frame is held), the pings stop, and
they come back once it moves again."""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path

from ecolens.bench.postgres import wait_until

from tests.support.bin_daemon import Running, write_config

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "ecolens-edge.service"


def test_the_unit_restarts_a_daemon_whose_watchdog_pings_stop():
    unit = UNIT.read_text()
    assert re.search(r"^Type=notify$", unit, re.MULTILINE)
    assert re.search(r"^WatchdogSec=\d+", unit, re.MULTILINE)
    assert re.search(r"^Restart=(on-failure|on-watchdog|always)$", unit, re.MULTILINE)


def test_a_hung_frame_loop_stops_the_watchdog_pings(tmp_path, mosquitto, reference_model, monkeypatch):
    address = str(tmp_path / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(address)
    server.settimeout(0.1)
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # a ping every 0.2 s while the loop moves
    pings: list[float] = []
    listening = threading.Event()

    def listen() -> None:
        while not listening.is_set():
            try:
                if b"WATCHDOG=1" in server.recv(200):
                    pings.append(time.monotonic())
            except TimeoutError:
                continue

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    running = Running(write_config(tmp_path, mosquitto, reference_model))
    try:
        assert wait_until(lambda: len(pings) >= 3, timeout=60), "no watchdog pings from a healthy daemon"
        with running.daemon.stats._lock:  # the frame loop blocks on its next frame: hung
            quiet = wait_until(lambda: time.monotonic() - pings[-1] > 1.5, timeout=20, interval=0.1)
            assert quiet, "the watchdog kept pinging while the frame loop was hung"
            during = len(pings)
        assert wait_until(lambda: len(pings) > during + 2, timeout=20), "no pings once the loop moved again"
    finally:
        running.stop()
        listening.set()
        listener.join(5)
        server.close()
