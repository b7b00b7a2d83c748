"""The terminal summary of `ecolens convert`'s report: the chosen model, where its input range and
labels came from, every quantization tried, the comparison with the source and the proof."""

from __future__ import annotations

from typing import Any

from ecolens.convert.metrics import percent


def format_report(report: dict[str, Any]) -> str:
    """Human-readable summary for the terminal."""
    prep = report["preprocessing"]
    lines = [
        f"model: {report['output']} ({report['mode']})",
        f"input range:            {prep['input_range']} ({prep['sources']['input_range']})",
        f"labels:                 {', '.join(report['metadata']['labels'])} ({prep['sources']['labels']})",
        f"output:                 {prep['sources']['output']}",
        f"photos:                 {report.get('photos', '')}",
    ]
    lines.append("quantization tried:")
    for row in report["attempts"]:
        verdict = "ok  " if row["passed"] else "fail"
        name = row["mode"]
        if "calibration_images" in row:
            name += f" ({row['calibration_images']} calibration images)"
        lines.append(
            f"  {name:<30} {verdict} {row['bytes'] / 1e6:6.2f} MB {row['seconds']:6.1f} s  {row['why']}"
        )
    retry = report.get("int8_retry")
    if retry:
        before, after = retry["agreement"]
        outcome = (
            "passed" if retry["passed"] else "helped, still failed" if retry["helped"] else "did not help"
        )
        lines.append(
            f"int8 calibration retry: {retry['calibration_images'][0]} -> {retry['calibration_images'][1]} "
            f"images, agreement {before:.1%} -> {after:.1%}: {outcome} "
            f"(weights are already quantized per channel)"
        )
    validation = report.get("validation")
    if validation:
        lines += [
            f"images compared:        {validation['images']}",
            f"top-1 agreement:        {percent(validation['agreement'], report['min_agreement'])} on "
            f"{validation['decided_photos']} photos the source decides "
            f"({percent(validation['agreement_all_photos'], report['min_agreement'])} on all; "
            f"minimum {percent(report['min_agreement'], report['min_agreement'])}, "
            f"{percent(report.get('min_agreement_all', 0.95), report['min_agreement'])} on all)",
            f"median |p difference|:  {validation['median_probability_difference']:.4f}",
            f"max |p difference|:     {validation['max_probability_difference']:.4f}",
            f"size:                   {validation['source_bytes'] / 1e6:.2f} MB -> "
            f"{validation['tflite_bytes'] / 1e6:.2f} MB (ratio {validation['size_ratio']:.3f})",
            f"median latency (1 img): source {validation['source_latency_ms']:.2f} ms, "
            f"tflite {validation['tflite_latency_ms']:.2f} ms",
        ]
        for key, title in (("source_metrics", "source"), ("tflite_metrics", "tflite")):
            metrics = validation.get(key)
            if metrics:
                lines.append(
                    f"{title:<7} accuracy {metrics['accuracy']:.3f}, "
                    f"balanced {metrics['balanced_accuracy']:.3f}, "
                    f"{metrics['positive_label']} F1 {metrics['f1']:.3f} (n={metrics['n']})"
                )
    kept = (validation or {}).get("kept_in_float")
    if kept:
        names = ", ".join(f"{k['layer'].split(';')[0]} ({k['output_error_share']:.0%})" for k in kept)
        lines.append(f"kept in float:          {names} (share of int8's output error, each alone)")
        if "int8_latency_ms" in validation:
            lines.append(
                f"cost of keeping them:   {validation['tflite_bytes'] / 1e6:.2f} MB vs "
                f"{validation['int8_bytes'] / 1e6:.2f} MB, {validation['tflite_latency_ms']:.2f} ms vs "
                f"{validation['int8_latency_ms']:.2f} ms in full int8"
            )
    proof_ = report.get("proof")
    if proof_:
        lines.append(f"proof ({proof_['kind']}): {proof_['failure'] or 'passed'}")
    for warning in report.get("warnings", []):
        lines.append(f"WARNING: {warning}")
    lines.append(f"report: {report.get('report_path')}")
    return "\n".join(lines)
