"""``syft_flwr.bootstrap``: turn an ordinary Flower app into a syft_flwr project.

Writes ``[tool.syft_flwr]`` (app_name, aggregator, datasites) into the app's pyproject.toml with
tomlkit, so every other byte of the file stays as it was, and renders ``main.py`` from
``templates/main.py``. Unless the project already says, it also adds ``[tool.uv] managed =
false`` so that ``uv run main.py`` runs in the toolkit's environment.
"""

from __future__ import annotations

import uuid
from importlib import resources
from pathlib import Path

from syft_flwr.config import flower_components, read_pyproject
from syft_flwr.errors import UsageError
from syft_flwr.network.atomic import atomic_write_text
from syft_flwr.network.layout import validate_email, validate_name

MAIN_FILE = "main.py"


def _check_parties(aggregator: str, datasites: list[str]) -> list[str]:
    validate_email(aggregator)
    if isinstance(datasites, str):
        datasites = [datasites]
    datasites = list(datasites)
    if not datasites:
        raise ValueError("name at least one datasite (a data owner's email) to run the app on")
    for email in datasites:
        validate_email(email)
    duplicates = sorted({e for e in datasites if datasites.count(e) > 1})
    if duplicates:
        raise ValueError(f"datasites listed more than once: {', '.join(duplicates)}")
    if aggregator in datasites:
        raise ValueError(
            f"the aggregator {aggregator} is also listed as a datasite; the aggregator (the data "
            "scientist) only aggregates, list the data owners as datasites"
        )
    return datasites


def _app_name(pyproject: dict) -> str:
    """A fresh, unique app name: the project's name plus a random suffix."""
    base = str(pyproject.get("project", {}).get("name", "flwr-app"))
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in base).strip("-_") or "app"
    return validate_name(f"{safe[:80]}-{uuid.uuid4().hex[:8]}", "app_name")


def _bootstrapped_pyproject(text: str, app_name: str, aggregator: str, datasites: list[str]) -> str:
    """``text`` with ``[tool.syft_flwr]`` set and, unless the project already says whether uv
    manages it, ``[tool.uv] managed = false``; every other byte as it was.

    A managed project makes ``uv run main.py`` build its own environment from the package
    index, one without syft_flwr, so the run fails on its first import. Unmanaged, uv runs
    main.py in the active (or nearest) environment, the one the toolkit is installed in.
    """
    import tomlkit  # here, not at the top: `import syft_flwr` need not load it

    doc = tomlkit.parse(text)
    tool = doc["tool"]  # [tool.flwr] guarantees it
    table = tomlkit.table()
    table.add("app_name", app_name)
    table.add("aggregator", aggregator)
    emails = tomlkit.array()
    emails.extend(datasites)
    table.add("datasites", emails.multiline(len(datasites) > 2))
    tool["syft_flwr"] = table  # type: ignore[index]

    uv = tool.get("uv")  # type: ignore[union-attr]
    if uv is None:
        uv = tool["uv"] = tomlkit.table()  # type: ignore[index]
    if "managed" not in uv:
        uv.add(tomlkit.comment("written by syft_flwr.bootstrap: `uv run main.py` runs in the"))
        uv.add(tomlkit.comment("active environment (the one with syft_flwr) instead of a new one"))
        uv.add("managed", False)
    return tomlkit.dumps(doc)


def _same_parties(parsed: dict, aggregator: str, datasites: list[str]) -> bool:
    table = parsed.get("tool", {}).get("syft_flwr", {})
    return (
        bool(table.get("app_name"))
        and table.get("aggregator") == aggregator
        and list(table.get("datasites", [])) == datasites
    )


def _check_transport(transport: str | None) -> None:
    """syft-flwr 0.5's ``transport``: "syftbox" (or None) is what this toolkit does."""
    if transport not in (None, "syftbox"):
        raise UsageError(
            f"transport={transport!r} is not available: syft_flwr runs over one shared network "
            "folder. Leave transport out (or pass 'syftbox') and give every party the same "
            "root_dir in syft_flwr.rds.setup_rds_server(...)"
        )


def bootstrap(
    project_dir: Path | str | None = None,
    aggregator: str | None = None,
    datasites: list[str] | None = None,
    transport: str | None = None,
    *,
    overwrite: bool = False,
    flwr_project_dir: Path | str | None = None,
) -> Path:
    """Bootstrap the Flower app in ``project_dir`` for ``aggregator`` and ``datasites``.

    Returns the path of the generated ``main.py``. When ``[tool.syft_flwr]`` already names
    these parties and only ``main.py`` is missing, ``main.py`` is written again (the table and
    its app_name stay). Any other already bootstrapped project is refused unless
    ``overwrite=True``, which rewrites both the table (with a new app_name) and main.py.
    ``transport`` and ``flwr_project_dir`` (another name for ``project_dir``) are syft-flwr
    0.5's arguments: only ``None`` or ``"syftbox"`` are accepted as the transport.
    """
    _check_transport(transport)
    project_dir = project_dir if project_dir is not None else flwr_project_dir
    if project_dir is None or aggregator is None or datasites is None:
        raise UsageError(
            "bootstrap needs the project folder, the aggregator and the datasites: "
            "bootstrap(project_dir, aggregator='ds@...', datasites=['do1@...', ...])"
        )
    project_dir = Path(project_dir).expanduser().resolve()
    if not project_dir.is_dir():
        raise FileNotFoundError(f"project folder {project_dir} does not exist")
    datasites = _check_parties(aggregator, datasites)
    pyproject_path = project_dir / "pyproject.toml"
    parsed = read_pyproject(project_dir)
    flower_components(project_dir)  # raises if this is not a Flower app

    main_path = project_dir / MAIN_FILE
    template = resources.files("syft_flwr").joinpath("templates", "main.py").read_text()
    already = "syft_flwr" in parsed.get("tool", {})
    missing_main = already and not main_path.exists()
    if not overwrite and missing_main and _same_parties(parsed, aggregator, datasites):
        atomic_write_text(main_path, template)
        return main_path
    if (already or main_path.exists()) and not overwrite:
        what = "[tool.syft_flwr] in pyproject.toml" if already else MAIN_FILE
        raise FileExistsError(
            f"{project_dir} is already bootstrapped ({what} exists); call "
            "bootstrap(..., overwrite=True) (CLI: --overwrite) to rewrite it"
        )

    text = _bootstrapped_pyproject(
        pyproject_path.read_text(encoding="utf-8"), _app_name(parsed), aggregator, datasites
    )
    atomic_write_text(pyproject_path, text)
    atomic_write_text(main_path, template)
    return main_path
