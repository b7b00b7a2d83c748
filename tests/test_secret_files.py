"""The rollout's signing key on the real filesystem: a link, a key owned by another user, a key
others may read and a key in a folder others may write are refused with one line, by the
aggregator (fleet.canary.keys) and by `ecolens rollout --key` alike; keygen does not follow a
planted rollout.pub link."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest
from ecolens.core.errors import ConfigError
from ecolens.fleet.canary.keys import read_signing_key

from ecolens.cli import main


@pytest.fixture
def key(tmp_path: Path) -> Path:
    assert main(["rollout", "keygen", "--out", str(tmp_path / "keys")]) == 0
    return tmp_path / "keys" / "rollout.key"


def cli_refusal(key: Path, capsys) -> str:
    """`ecolens rollout rollback --key KEY`: the key is read before any broker is asked."""
    code = main(
        ["rollout", "rollback", "--devices", "bin-1", "--key", str(key), "--broker", "mqtt://127.0.0.1:9"]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


def aggregator_refusal(key: Path) -> str:
    with pytest.raises(ConfigError) as refused:
        read_signing_key(key)
    return str(refused.value)


def test_a_good_key_is_read_by_both(key, capsys):
    assert read_signing_key(key) is not None
    # the CLI gets past the key: it fails on the closed broker port instead
    main(["rollout", "rollback", "--devices", "bin-1", "--key", str(key), "--broker", "mqtt://127.0.0.1:9"])
    assert "key" not in capsys.readouterr().err.lower()


def test_a_link_to_the_key_is_refused(key, tmp_path, capsys):
    link = key.parent / "link.key"
    link.symlink_to(key)
    assert "symbolic link" in aggregator_refusal(link)
    assert "symbolic link" in cli_refusal(link, capsys)


def test_a_key_others_may_read_is_refused(key, capsys):
    key.chmod(0o644)
    assert "chmod 600" in aggregator_refusal(key)
    assert "chmod 600" in cli_refusal(key, capsys)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_key_owned_by_another_user_is_refused(key, capsys):
    nobody = pwd.getpwnam("nobody").pw_uid
    os.chown(key, nobody, -1)
    assert "another user" in aggregator_refusal(key)
    assert "another user" in cli_refusal(key, capsys)


def test_a_key_in_a_folder_others_may_write_is_refused(key, capsys):
    key.parent.chmod(0o777)
    assert "chmod go-w" in aggregator_refusal(key)
    assert "chmod go-w" in cli_refusal(key, capsys)


def test_keygen_does_not_follow_a_planted_public_key_link(tmp_path, capsys):
    out = tmp_path / "keys"
    out.mkdir(mode=0o700)
    target = tmp_path / "victim.txt"
    target.write_text("precious\n")
    (out / "rollout.pub").symlink_to(target)
    assert main(["rollout", "keygen", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "refusing" in err
    assert target.read_text() == "precious\n"
    assert not (out / "rollout.key").exists()
