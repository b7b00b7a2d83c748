"""What a benchmark ran on: CPU model, its int8 dot-product instructions and the load average,
printed before every benchmark so figures from different machines are never compared blind."""

from __future__ import annotations

import os
import platform
from pathlib import Path

# vpdpbusd (AVX-512 VNNI / AVX-VNNI) on x86, SDOT/UDOT (asimddp) on Arm: what int8 inference uses.
DOT_PRODUCT_FLAGS = ("avx512_vnni", "avx_vnni", "asimddp", "i8mm")


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware") and value.strip():
            return value.strip()
    return platform.machine()


def dot_product_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return [flag for flag in DOT_PRODUCT_FLAGS if flag in flags]


def load_average() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def describe() -> dict[str, object]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "int8_dot_product": dot_product_flags(),
        "load_average": load_average(),
        "machine": platform.machine(),
    }


def header() -> str:
    """One line for the top (and the bottom, for the load) of a benchmark's output."""
    info = describe()
    flags = ", ".join(info["int8_dot_product"]) or "none"  # type: ignore[arg-type]
    return (
        f"machine: {info['cpu']} ({info['machine']}, {info['cores']} cores); "
        f"int8 dot product: {flags}; load average: {info['load_average']}"
    )
