"""The private paths Network owns for the key store and the run registrations."""

from __future__ import annotations

from pathlib import Path

import pytest

from syft_flwr.network.layout import Network

DS, OTHER = "ds@openmined.org", "other@openmined.org"


def test_key_paths(tmp_path: Path) -> None:
    network = Network(tmp_path)
    assert network.private_keys_dir(DS) == tmp_path / "private" / DS / "keys"
    assert network.public_keys_path(DS) == tmp_path / "datasites" / DS / "public" / "keys.json"
    with pytest.raises(ValueError):
        network.private_keys_dir("../x")


def test_run_registrations(tmp_path: Path) -> None:
    network = Network(tmp_path)
    assert network.run_registration_paths() == []  # no private folder yet
    assert network.run_registrations_dir(DS) == tmp_path / "private" / DS / "runs"
    for email, run_id in ((DS, 7), (OTHER, "8"), (OTHER, 7)):
        path = network.run_registration_path(email, run_id)
        assert path == tmp_path / "private" / email / "runs" / f"{run_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    assert len(network.run_registration_paths()) == 3
    assert network.run_registration_paths(7) == [
        network.run_registration_path(DS, 7),
        network.run_registration_path(OTHER, 7),
    ]
    with pytest.raises(ValueError):
        network.run_registration_path(DS, "../7")
    with pytest.raises(ValueError):
        network.run_registration_paths("*")
