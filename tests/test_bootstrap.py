import tomllib
from pathlib import Path

import pytest

import syft_flwr
from syft_flwr.config import load_project_config
from syft_flwr.errors import SyftFlwrError
from tests.support import AGGREGATOR, DATASITES


def test_bootstrap_writes_table_and_keeps_the_rest_byte_for_byte(tiny_app: Path) -> None:
    before = (tiny_app / "pyproject.toml").read_text()
    main_path = syft_flwr.bootstrap(tiny_app, aggregator=AGGREGATOR, datasites=DATASITES)

    after = (tiny_app / "pyproject.toml").read_text()
    assert after.startswith(before.rstrip("\n"))  # comments and order untouched
    config = load_project_config(tiny_app)
    assert config.aggregator == AGGREGATOR
    assert config.datasites == tuple(DATASITES)
    assert config.app_name.startswith("tiny-app-")
    assert main_path == tiny_app / "main.py"
    assert "syft_flwr.runtime" in main_path.read_text()


def test_each_bootstrap_gets_a_unique_app_name(tiny_app: Path) -> None:
    syft_flwr.bootstrap(tiny_app, aggregator=AGGREGATOR, datasites=DATASITES)
    first = load_project_config(tiny_app).app_name
    syft_flwr.bootstrap(tiny_app, aggregator=AGGREGATOR, datasites=DATASITES, overwrite=True)
    assert load_project_config(tiny_app).app_name != first


def test_bootstrapping_again_needs_overwrite(tiny_app: Path) -> None:
    syft_flwr.bootstrap(tiny_app, aggregator=AGGREGATOR, datasites=DATASITES)
    (tiny_app / "main.py").write_text("# edited")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        syft_flwr.bootstrap(tiny_app, aggregator=AGGREGATOR, datasites=DATASITES)
    assert (tiny_app / "main.py").read_text() == "# edited"  # nothing rewritten

    syft_flwr.bootstrap(tiny_app, aggregator=AGGREGATOR, datasites=["x@y.org"], overwrite=True)
    assert "syft_flwr.runtime" in (tiny_app / "main.py").read_text()
    data = tomllib.loads((tiny_app / "pyproject.toml").read_text())
    assert data["tool"]["syft_flwr"]["datasites"] == ["x@y.org"]
    assert (tiny_app / "pyproject.toml").read_text().count("[tool.syft_flwr]") == 1


@pytest.mark.parametrize(
    ("aggregator", "datasites", "message"),
    [
        ("not-an-email", DATASITES, "not a valid datasite email"),
        (AGGREGATOR, ["do1@openmined.org", "../etc@x.org"], "not a valid datasite email"),
        (AGGREGATOR, ["do1@openmined.org", "do1@openmined.org"], "more than once"),
        (AGGREGATOR, [AGGREGATOR, "do1@openmined.org"], "also listed as a datasite"),
        (AGGREGATOR, [], "at least one datasite"),
    ],
)
def test_bad_parties_are_refused(tiny_app: Path, aggregator, datasites, message) -> None:
    before = (tiny_app / "pyproject.toml").read_bytes()
    with pytest.raises(ValueError, match=message):
        syft_flwr.bootstrap(tiny_app, aggregator=aggregator, datasites=datasites)
    assert (tiny_app / "pyproject.toml").read_bytes() == before
    assert not (tiny_app / "main.py").exists()


def test_missing_pyproject_and_non_flower_project(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="pyproject.toml"):
        syft_flwr.bootstrap(tmp_path, aggregator=AGGREGATOR, datasites=DATASITES)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(ValueError, match=r"tool.flwr.app.components"):
        syft_flwr.bootstrap(tmp_path, aggregator=AGGREGATOR, datasites=DATASITES)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        syft_flwr.bootstrap(tmp_path / "nope", aggregator=AGGREGATOR, datasites=DATASITES)


def test_unbootstrapped_project_is_named_as_such(tiny_app: Path) -> None:
    with pytest.raises(ValueError, match="not bootstrapped"):
        load_project_config(tiny_app)


def test_bootstrap_lets_uv_run_main_py_in_this_environment(tiny_app: Path) -> None:
    syft_flwr.bootstrap(tiny_app, aggregator=AGGREGATOR, datasites=DATASITES)
    parsed = tomllib.loads((tiny_app / "pyproject.toml").read_text())
    assert parsed["tool"]["uv"] == {"managed": False}


def test_bootstrap_keeps_a_project_s_own_uv_choice(tiny_app: Path) -> None:
    pyproject = tiny_app / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n[tool.uv]\nmanaged = true\npackage = false\n")
    syft_flwr.bootstrap(tiny_app, aggregator=AGGREGATOR, datasites=DATASITES)
    parsed = tomllib.loads(pyproject.read_text())
    assert parsed["tool"]["uv"] == {"managed": True, "package": False}


def test_bootstrapping_again_regenerates_a_missing_main_py(tiny_app: Path) -> None:
    """The walkthrough deletes main.py and bootstraps again with the same parties."""
    syft_flwr.bootstrap(tiny_app, aggregator=AGGREGATOR, datasites=DATASITES)
    pyproject = (tiny_app / "pyproject.toml").read_text()
    (tiny_app / "main.py").unlink()
    main_path = syft_flwr.bootstrap(tiny_app, aggregator=AGGREGATOR, datasites=DATASITES)
    assert main_path == tiny_app / "main.py" and "syft_flwr.runtime" in main_path.read_text()
    assert (tiny_app / "pyproject.toml").read_text() == pyproject  # same table, same app_name
    (tiny_app / "main.py").unlink()
    with pytest.raises(FileExistsError, match="overwrite=True"):  # other parties: not the same
        syft_flwr.bootstrap(tiny_app, aggregator=AGGREGATOR, datasites=["x@y.org"])
    assert not (tiny_app / "main.py").exists()


def test_syft_flwr_0_5_transport_argument(tiny_app: Path) -> None:
    with pytest.raises(SyftFlwrError, match="root_dir") as info:
        syft_flwr.bootstrap(tiny_app, AGGREGATOR, DATASITES, transport="p2p")
    assert isinstance(info.value, ValueError) and not (tiny_app / "main.py").exists()
    syft_flwr.bootstrap(tiny_app, AGGREGATOR, DATASITES, "syftbox")  # positional, as in 0.5
    assert load_project_config(tiny_app).datasites == tuple(DATASITES)
