"""`ecolens rollout`: signed, staged model rollout to the bins over MQTT (run on the fleet server).

ecolens rollout keygen --out DIR
ecolens rollout MODEL.tflite --devices bin-01,bin-02 | --canary 10% [--watch S --promote]
ecolens rollout status
ecolens rollout rollback --devices bin-01
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ecolens.commands.fleet import _add_broker, _add_config, _fleet_config
from ecolens.core.errors import EcoLensError

ACTIONS = ("keygen", "status", "rollback")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rollout",
        help="sign and push a model to bins (staged, canary, rollback); 'rollout status' lists them",
        description="TARGET is a .tflite to roll out, or one of: keygen (make the Ed25519 key pair), "
        "status (every bin's running model), rollback (back to each bin's previous model). "
        "The private key signs every manifest; bins hold only the public key.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument("target", metavar="TARGET", help="MODEL.tflite, keygen, status or rollback")
    _add_config(parser)
    _add_broker(parser)
    parser.add_argument(
        "--key",
        type=Path,
        default=os.environ.get("ECOLENS_ROLLOUT_KEY"),
        help="the private signing key (default: $ECOLENS_ROLLOUT_KEY)",
    )
    parser.add_argument("--devices", help="comma-separated bin ids")
    parser.add_argument("--canary", help="a share of the bins that report a model state, e.g. 10%%")
    parser.add_argument(
        "--watch",
        type=float,
        default=0.0,
        metavar="S",
        help="after a canary push, compare it with the rest for S seconds; roll it back when worse",
    )
    parser.add_argument("--promote", action="store_true", help="after a healthy canary, push to every bin")
    parser.add_argument("--min-results", type=int, default=10, help="results per group needed to judge (10)")
    parser.add_argument(
        "--max-share-delta",
        type=float,
        default=0.25,
        help="plastic share the canary may differ from the rest by (0.25; above the change you expect)",
    )
    parser.add_argument(
        "--max-uncertain-delta", type=float, default=0.15, help="uncertain rate the canary may add (0.15)"
    )
    parser.add_argument("--out", type=Path, help="keygen: folder for rollout.key and rollout.pub")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run_rollout)


def run_rollout(args: argparse.Namespace) -> int:
    if args.target == "keygen":
        return keygen(args)
    config = _fleet_config(args)
    from ecolens.fleet import rollout

    prefix = config.subscriber.prefix
    if args.target == "status":
        states = rollout.collect_states(config.mqtt, prefix)
        print(json.dumps(states, indent=2) if args.json else rollout.format_states(states))
        return 0
    key = private_key(args)
    devices = split_devices(args.devices)
    if args.target == "rollback":
        if not devices:
            raise EcoLensError("rollback needs --devices")
        states = rollout.collect_states(config.mqtt, prefix)
        rollout.publish_rollback(config.mqtt, prefix, states, devices, key)
        print(f"rollback sent to {', '.join(devices)}")
        return 0
    model = Path(args.target)
    if not model.is_file():
        raise EcoLensError(f"model file not found: {model} (or use keygen, status, rollback)")
    if bool(devices) == bool(args.canary):
        raise EcoLensError("give exactly one of --devices and --canary")
    from ecolens.core.classifier import file_sha256

    sha256 = file_sha256(model)
    states = rollout.collect_states(config.mqtt, prefix)
    if args.canary:
        devices = rollout.pick_canaries(list(states), percent(args.canary), sha256)
    started = time.monotonic()
    manifests = rollout.publish_model(config.mqtt, prefix, model, devices, key)
    print(
        f"model {manifests[0].name} {manifests[0].version} ({sha256[:12]}, {manifests[0].chunks} chunks) "
        f"signed for {', '.join(devices)} in {time.monotonic() - started:.1f} s",
        flush=True,
    )
    if not args.canary or args.watch <= 0:
        return 0
    verdict = rollout.watch_canary(
        config.mqtt,
        prefix,
        devices,
        sha256,
        args.watch,
        min_results=args.min_results,
        max_share_delta=args.max_share_delta,
        max_uncertain_delta=args.max_uncertain_delta,
    )
    print(
        json.dumps(
            {
                "healthy": verdict.healthy,
                "reasons": verdict.reasons,
                "canary": verdict.canary,
                "rest": verdict.rest,
            },
            indent=2,
        ),
        flush=True,
    )
    if not verdict.healthy:
        states = rollout.collect_states(config.mqtt, prefix)
        rollout.publish_rollback(config.mqtt, prefix, states, devices, key)
        print(f"canary worse than the rest: rolled back {', '.join(devices)}", file=sys.stderr)
        return 1
    if args.promote:
        others = [d for d in states if d not in devices]
        if others:
            rollout.publish_model(config.mqtt, prefix, model, others, key)
        print(f"canary healthy: promoted to {', '.join(others) or 'no other bins'}")
    return 0


def split_devices(text: str | None) -> list[str]:
    from ecolens.core.topics import check_level

    devices = [d.strip() for d in (text or "").split(",") if d.strip()]
    for device in devices:
        try:
            check_level(device)
        except ValueError as exc:
            raise EcoLensError(f"--devices: {device!r} {exc}") from exc
    return devices


def percent(text: str) -> float:
    try:
        value = float(text.rstrip("%"))
    except ValueError as exc:
        raise EcoLensError(f"--canary needs a percentage like 10%, got {text!r}") from exc
    if not 0 < value <= 100:
        raise EcoLensError("--canary must be between 0 and 100 percent")
    return value


def private_key(args: argparse.Namespace):  # noqa: ANN201 - a cryptography key object
    from ecolens.core.rollout import load_private_key

    if args.key is None:
        raise EcoLensError(
            "no signing key: pass --key or set ECOLENS_ROLLOUT_KEY (make one: ecolens rollout keygen)"
        )
    try:
        pem = Path(args.key).read_bytes()
    except OSError as exc:
        raise EcoLensError(f"cannot read the signing key {args.key}: {exc.strerror or exc}") from exc
    return load_private_key(pem)


def keygen(args: argparse.Namespace) -> int:
    from ecolens.core.rollout import generate_keypair

    if args.out is None:
        raise EcoLensError("keygen needs --out DIR")
    args.out.mkdir(parents=True, exist_ok=True)
    key_path, pub_path = args.out / "rollout.key", args.out / "rollout.pub"
    if key_path.exists():
        raise EcoLensError(f"{key_path} exists; refusing to overwrite a signing key")
    pem, public = generate_keypair()
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    pub_path.write_text(public + "\n")
    print(f"private key: {key_path} (keep it on the fleet server only)")
    print(f"public key for every bin's [rollout] public_key: {public}")
    return 0
