"""`ecolens rollout`: signed, staged model rollout to the bins over MQTT (run on the fleet server).

ecolens rollout keygen --out DIR
ecolens rollout MODEL.tflite --devices bin-01,bin-02 | --canary 10% [--window S] [--watch [--promote]]
ecolens rollout status [--database URL] [--json]
ecolens rollout rollback --devices bin-01
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ecolens.commands.fleet import _add_broker, _add_config, _add_database, _fleet_config
from ecolens.core.errors import EcoLensError

ACTIONS = ("keygen", "status", "rollback")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rollout",
        help="sign and push a model to bins (staged, canary, rollback); 'rollout status' lists them",
        description="TARGET is a .tflite to roll out, or one of: keygen (make the Ed25519 key pair), "
        "status (every bin's running model and the rollouts recorded in the fleet database), "
        "rollback (back to each bin's previous model). "
        "The private key signs every manifest; bins hold only the public key.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument("target", metavar="TARGET", help="MODEL.tflite, keygen, status or rollback")
    _add_config(parser)
    _add_broker(parser)
    _add_database(parser)
    parser.add_argument(
        "--key",
        type=Path,
        default=os.environ.get("ECOLENS_ROLLOUT_KEY"),
        help="the private signing key (default: $ECOLENS_ROLLOUT_KEY)",
    )
    parser.add_argument("--devices", help="comma-separated bin ids")
    parser.add_argument("--canary", help="a share of the bins that report a model state, e.g. 10%%")
    parser.add_argument(
        "--window",
        type=float,
        default=1800.0,
        metavar="S",
        help="canary: the aggregator compares it with the rest for S seconds and rolls it back "
        "when worse (1800)",
    )
    parser.add_argument(
        "--watch",
        action="store_true",
        help="canary: wait for the aggregator's verdict and print it (exit 1 when rolled back)",
    )
    parser.add_argument(
        "--promote", action="store_true", help="with --watch: after a healthy verdict, push to every bin"
    )
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
    parser.add_argument(
        "--max-error-delta",
        type=float,
        default=0.1,
        help="error rate the canary may add: times offline per result plus error (0.1)",
    )
    parser.add_argument(
        "--min-canaries",
        type=int,
        default=3,
        help="canary bins that must answer with the new model before the aggregator judges it healthy (3)",
    )
    parser.add_argument("--out", type=Path, help="keygen: folder for rollout.key and rollout.pub")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run_rollout)


def run_rollout(args: argparse.Namespace) -> int:
    if args.target == "keygen":
        return keygen(args)
    config = _fleet_config(args)
    if args.target == "status":
        return status(args, config)
    key = private_key(args)
    devices = split_devices(args.devices)
    if args.target == "rollback":
        return rollback(config, devices, key)
    model = Path(args.target)
    if not model.is_file():
        raise EcoLensError(f"model file not found: {model} (or use keygen, status, rollback)")
    if bool(devices) == bool(args.canary):
        raise EcoLensError("give exactly one of --devices and --canary")
    return push(args, config, model, devices, key)


def push(args: argparse.Namespace, config, model: Path, devices: list[str], key) -> int:  # noqa: ANN001
    """Sign and publish the model for the bins (or the canaries), record it as their current
    manifest, and for a canary hand it to the aggregator."""
    from ecolens.core.classifier import file_sha256
    from ecolens.fleet.rollout.current import revoked_by
    from ecolens.fleet.rollout.publish import collect_states, publish_model
    from ecolens.fleet.rollout.states import pick_canaries

    prefix, ttl_s = config.subscriber.prefix, config.rollout.manifest_ttl_s
    sha256 = file_sha256(model)
    database = optional_database(config)
    try:
        if database is not None and (rollout_id := revoked_by(database, sha256)) is not None:
            raise EcoLensError(
                f"model {sha256[:12]} was rolled back (rollout {rollout_id}); it is never pushed again"
            )
        states = collect_states(config.mqtt, prefix)
        if args.canary:
            devices = pick_canaries(list(states), percent(args.canary), sha256)
            if len(devices) < args.min_canaries:
                print(
                    f"only {len(devices)} canary bins (< --min-canaries {args.min_canaries}): the aggregator "
                    "may roll them back but will not judge them healthy",
                    file=sys.stderr,
                )
        started = time.monotonic()
        manifests = publish_model(config.mqtt, prefix, model, devices, key, ttl_s, database)
        print(
            f"model {manifests[0].name} {manifests[0].version} ({sha256[:12]}, {manifests[0].chunks} chunks) "
            f"signed for {', '.join(devices)} in {time.monotonic() - started:.1f} s",
            flush=True,
        )
        if not args.canary:
            return 0
        record_canary(args, config, manifests[0], devices)
        if not args.watch:
            print(f"the aggregator watches the canary for {args.window:.0f} s (ecolens rollout status)")
            return 0
        decided = wait_for_verdict(config, manifests[0].rollout_id, args.window)
        print(json.dumps({"state": decided.state, **(decided.verdict or {})}, indent=2), flush=True)
        if decided.state != "healthy":
            done = {
                "rolled_back": "rolled back",
                "inconclusive": "inconclusive, NOT promoted",
            }.get(decided.state, "NOT rolled back (see the aggregator's log)")
            print(f"canary not judged healthy: {done} {', '.join(devices)}", file=sys.stderr)
            return 1
        if args.promote:
            others = [d for d in states if d not in devices]
            if others:
                publish_model(config.mqtt, prefix, model, others, key, ttl_s, database)
            print(f"canary healthy: promoted to {', '.join(others) or 'no other bins'}")
        return 0
    finally:
        if database is not None:
            database.close()


def rollback(config, devices: list[str], key) -> int:  # noqa: ANN001
    """A signed rollback to each bin, online or not, revoking the model its current manifest
    installed; a bin already rolled back, or with nothing to go back to, gets nothing (one line)."""
    from ecolens.fleet.rollout.current import revoke, rollback_target
    from ecolens.fleet.rollout.publish import collect_states, opener, publish_rollback

    if not devices:
        raise EcoLensError("rollback needs --devices")
    prefix = config.subscriber.prefix
    states = collect_states(config.mqtt, prefix)
    database = optional_database(config)
    try:
        models = {}
        for device in devices:
            model, why = rollback_target(database, device, states.get(device))
            if model is None:
                print(f"{device}: {why}; nothing sent")
            else:
                models[device] = model
        if not models:
            return 0
        ttl_s = config.rollout.manifest_ttl_s
        manifests = publish_rollback(opener(config.mqtt), prefix, models, key, ttl_s, database)
        if database is not None:
            for model in set(models.values()):
                revoke(database, model.sha256, manifests[0].rollout_id, int(time.time() * 1000))
        print(
            "rollback sent to "
            + ", ".join(f"{d} (revokes {m.version} {m.sha256[:12]})" for d, m in models.items())
        )
        return 0
    finally:
        if database is not None:
            database.close()


def optional_database(config):  # noqa: ANN001, ANN201
    """The fleet database where it exists (current manifests, revoked models); None with one line."""
    from ecolens.fleet.storage import open_database

    try:
        return open_database(config.storage.url, create=False)
    except EcoLensError as exc:
        print(
            f"manifests not recorded in the fleet database ({exc}): no aggregator re-signs them, "
            f"so they expire in {config.rollout.manifest_ttl_s:.0f} s",
            file=sys.stderr,
        )
        return None


def status(args: argparse.Namespace, config) -> int:  # noqa: ANN001
    """Every bin's running model (from the broker), then the rollouts the aggregator recorded
    (from the fleet database); without a database the bins are still shown."""
    from dataclasses import asdict

    from ecolens.fleet.canary.records import format_rollouts, load_rollouts
    from ecolens.fleet.rollout.publish import collect_states
    from ecolens.fleet.rollout.states import format_states
    from ecolens.fleet.storage import open_database

    states = collect_states(config.mqtt, config.subscriber.prefix)
    recorded = None
    try:
        database = open_database(config.storage.url, create=False)
    except EcoLensError as exc:
        print(f"recorded rollouts not shown: {exc}", file=sys.stderr)
    else:
        try:
            recorded = load_rollouts(database)
        finally:
            database.close()
    if args.json:
        rollouts = None if recorded is None else [asdict(r) for r in recorded]
        print(json.dumps({"bins": states, "rollouts": rollouts}, indent=2))
        return 0
    print(format_states(states))
    if recorded is not None:
        print()
        print(format_rollouts(recorded))
    return 0


def record_canary(args: argparse.Namespace, config, manifest, devices: list[str]) -> None:  # noqa: ANN001
    """Hand the canary to the aggregator: one row in the fleet database it supervises."""
    from ecolens.fleet.canary.records import StagedRollout, record_rollout
    from ecolens.fleet.storage import open_database

    if args.window <= 0 or args.min_results < 1 or args.min_canaries < 1:
        raise EcoLensError("--window, --min-results and --min-canaries must be positive")
    database = open_database(config.storage.url, create=False)
    try:
        record_rollout(
            database,
            StagedRollout(
                rollout_id=manifest.rollout_id,
                sha256=manifest.sha256,
                name=manifest.name,
                version=manifest.version,
                canaries=tuple(devices),
                started_ms=int(time.time() * 1000),
                window_s=args.window,
                min_results=args.min_results,
                max_share_delta=args.max_share_delta,
                max_uncertain_delta=args.max_uncertain_delta,
                max_error_delta=args.max_error_delta,
                min_canaries=args.min_canaries,
            ),
        )
    finally:
        database.close()


def wait_for_verdict(config, rollout_id: str, window_s: float):  # noqa: ANN001, ANN201
    """The aggregator's decision on this rollout; an error when none comes in time."""
    from ecolens.fleet.canary.records import WATCHING, load_rollout
    from ecolens.fleet.storage import open_database

    grace_s = 3 * config.rollout.check_interval_s + 30
    deadline = time.monotonic() + window_s + grace_s
    database = open_database(config.storage.url, create=False)
    try:
        while time.monotonic() < deadline:
            decided = load_rollout(database, rollout_id)
            if decided is not None and decided.state != WATCHING:
                return decided
            time.sleep(1.0)
    finally:
        database.close()
    raise EcoLensError(
        f"no verdict from the aggregator on rollout {rollout_id} after {window_s + grace_s:.0f} s: "
        "is `ecolens aggregate` running on this database?"
    )


def split_devices(text: str | None) -> list[str]:
    from ecolens.core.wire import check_level

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
    from ecolens.core.secret_files import SecretFileError, read_secret

    try:
        pem = read_secret(Path(args.key))
    except SecretFileError as exc:
        raise EcoLensError(f"signing key refused: {exc}") from None
    return load_private_key(pem)


def keygen(args: argparse.Namespace) -> int:
    from ecolens.core.rollout import generate_keypair

    if args.out is None:
        raise EcoLensError("keygen needs --out DIR")
    from ecolens.core.secret_files import SecretFileError, check_folder, create_new

    args.out.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_path, pub_path = args.out / "rollout.key", args.out / "rollout.pub"
    for path in (key_path, pub_path):  # a leftover or planted file (or link) stops keygen
        if os.path.lexists(path):
            raise EcoLensError(f"{path} exists; refusing to overwrite a signing key or follow a link")
    pem, public = generate_keypair()
    try:
        check_folder(args.out)
        create_new(key_path, pem, 0o600)
        create_new(pub_path, (public + "\n").encode(), 0o644)
    except SecretFileError as exc:
        raise EcoLensError(f"keygen refused: {exc}") from None
    print(f"private key: {key_path} (keep it on the fleet server only)")
    print(f"public key for every bin's [rollout] public_key: {public}")
    return 0
