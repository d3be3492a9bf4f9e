"""Every path of the network in one place, and names that cannot escape it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syft_flwr.network.layout import Network, validate_email, validate_name

ROOT_KEY = "local_syftbox_network"


@pytest.mark.parametrize(
    "email", ["do1@openmined.org", "a.b+c@x-y.example.com", "DS_1@Open.Mined.ORG"]
)
def test_valid_emails(email: str) -> None:
    assert validate_email(email) == email


@pytest.mark.parametrize(
    "email",
    [
        "",
        "no-at-sign",
        "a@b",
        "../x@y.org",
        "a/b@y.org",
        "a@y..org",
        "a..b@y.org",
        ".a@y.org",
        "a@y.org/",
        "a b@y.org",
        None,
    ],
)
def test_invalid_emails(email) -> None:
    with pytest.raises(ValueError, match="not a valid datasite email"):
        validate_email(email)


@pytest.mark.parametrize("name", ["pima-indians-diabetes-database", "a", "v1.2_x", "A" * 128])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name", ["", ".", "..", "../x", "a/b", "a\\b", ".hidden", "-x", "a..b", "A" * 129, "a b"]
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(ValueError, match="dataset name .* is not allowed"):
        validate_name(name, "dataset name")


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_any_accepted_name_stays_one_folder_below(name: str) -> None:
    try:
        validate_name(name)
    except ValueError:
        return
    net = Network(Path("/net"))
    path = net.dataset_dir("do1@openmined.org", name)
    assert path.parent == net.datasets_dir("do1@openmined.org")
    assert path.name == name and "/" not in name and name not in (".", "..")


def test_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    net = Network.at(".", ROOT_KEY)
    assert net.root == tmp_path.resolve() / ROOT_KEY  # resolved: valid from any cwd
    do = "do1@openmined.org"
    site = net.root / "datasites" / do
    assert net.datasite(do) == site
    assert net.public_dir(do) == site / "public"
    assert net.status_path(do) == site / "public" / "status.json"
    assert net.dataset_dir(do, "pima") == site / "public" / "datasets" / "pima"
    assert net.jobs_dir(do) == site / "app_data" / "rds" / "jobs"
    assert net.flwr_inbox(do, "app") == site / "app_data" / "flwr" / "app" / "inbox"
    assert net.private_dir(do) == net.root / "private" / do
    assert net.identity_path(do) == net.root / "private" / do / "identity.json"
    assert not net.private_dir(do).is_relative_to(net.datasites_dir)  # never synced
    with pytest.raises(ValueError):
        net.flwr_dir(do, "../escape")
    with pytest.raises(ValueError, match="network key"):
        Network.at(".", "../up")


def test_datasite_emails(tmp_path: Path) -> None:
    net = Network.at(tmp_path)
    assert net.datasite_emails() == []
    for email in ("do2@openmined.org", "do1@openmined.org"):
        net.public_dir(email).mkdir(parents=True)
    (net.datasites_dir / "stray-file").write_text("")
    assert net.datasite_emails() == ["do1@openmined.org", "do2@openmined.org"]
