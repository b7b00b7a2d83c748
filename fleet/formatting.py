"""`ecolens report` output: an aligned table for people, JSON or CSV for scripts."""

from __future__ import annotations

import csv
import io
import json
from typing import Any


def _rows(report: dict[str, Any], view: str) -> tuple[list[str], list[list[Any]]]:
    """A view as a header and rows. The columns never depend on the data (a bin or window
    without plastic keeps its ``plastic`` column), so scripts can rely on them; every label
    of a multi-class model is in the JSON output."""
    if view == "bins":
        header = ["device_id", "items", "plastic", "other", "plastic_share", "uncertain"]
        rows = [
            [
                b["device_id"],
                b["items"],
                b["plastic"],
                b["items"] - b["plastic"],
                b["plastic_share"],
                b["uncertain"],
            ]
            for b in report["bins"]
        ]
        return header, rows
    if view == "series":
        header = ["bucket_start", "device_id", "items", "plastic", "plastic_share"]
        return header, [[p[h] for h in header] for p in report["series"]]
    header = ["device_id", "state", "status", "camera", "status_since", "last_result", "missing"]
    missing = report.get("missing", {})
    return header, [[*(s[h] for h in header[:-1]), missing.get(s["device_id"], 0)] for s in report["status"]]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1%}" if value <= 1 else f"{value:.1f}"
    return str(value)


def as_table(report: dict[str, Any], view: str) -> str:
    header, rows = _rows(report, view)
    cells = [header] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    totals = report["totals"]
    window = report["window"]
    footer = (
        f"{window['since']} .. {window['until']}: {totals['items']} items from "
        f"{totals['bins']} bins, plastic share {_cell(totals['plastic_share'])}, "
        f"{totals['rejected_messages']} rejected messages"
    )
    if "offline" in totals:
        footer += f", {totals['offline']} bins offline, {totals['stale']} stale"
        footer += f", {totals['camera_down']} with the camera down"
    if not rows:
        lines.append("(no data)")
    missing = [f"results missing from bin {d}: {n}" for d, n in report.get("missing", {}).items()]
    return "\n".join([*lines, "", footer, *missing])


def as_csv(report: dict[str, Any], view: str) -> str:
    header, rows = _rows(report, view)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return out.getvalue()


def as_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2)
