"""The SyftBox permission files (``syftperm.yaml``) the toolkit writes on a party's datasite.

The SyftBox server enforces them: a file that a party may not write never leaves its client
(it is renamed ``*.syftrejected.*`` there). What the toolkit grants:

- ``public/``: read by everyone (datasets' metadata and mock data, keys, heartbeats);
- ``app_data/rds/jobs/``: every guest may read and *create* files (submit a job) but never
  change a file that exists (another guest's request, the owner's status mirror);
  ``results/`` of a job is readable only by the data scientists it was shared with;
- ``app_data/flwr/<app>/inbox/``: only the run's parties (the aggregator on a datasite, the
  datasites on the aggregator's) may read and drop files;
- everything else: the owner only (SyftBox's default).

The files are JSON, which is YAML, so no YAML library is needed. The owner of a datasite can
always read and write all of it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path

from syft_flwr.config import ProjectConfig, load_project_config
from syft_flwr.network import Network, validate_email, validate_name
from syft_flwr.network.atomic import atomic_write_text

PERM_FILE = "syftperm.yaml"

Rule = dict[str, object]


def rule(path: str, user: str, *permissions: str, allow: bool = True) -> Rule:
    """One SyftBox rule: ``user`` (an email or ``*``) gets ``permissions`` on ``path`` (a glob
    relative to the permission file's folder); ``allow=False`` takes them away."""
    entry: Rule = {"path": path, "user": user, "permissions": list(permissions)}
    if not allow:
        entry["type"] = "disallow"
    return entry


def write_rules(folder: Path, rules: Iterable[Rule]) -> Path:
    """Write ``folder/syftperm.yaml`` (atomically) unless it already holds these rules."""
    path = Path(folder) / PERM_FILE
    text = json.dumps(list(rules), indent=1) + "\n"
    try:
        if path.read_text(encoding="utf-8") == text:
            return path
    except OSError:
        pass
    atomic_write_text(path, text)
    return path


def read_rules(folder: Path) -> list[Rule]:
    """The rules of ``folder/syftperm.yaml`` written by the toolkit ([] if none or not JSON)."""
    try:
        rules = json.loads((Path(folder) / PERM_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return rules if isinstance(rules, list) else []


def rds_dir(network: Network, email: str) -> Path:
    """``app_data/rds/``: the folder whose permission file guards the job inboxes."""
    return network.jobs_dir(email).parent


def job_rules(shared: Iterable[tuple[str, str]] = ()) -> list[Rule]:
    """The rules of ``app_data/rds/``: guests submit, results only to whom they were shared."""
    rules = [
        rule("jobs/**", "*", "read", "create"),
        rule("jobs/*/results/**", "*", "read", allow=False),
    ]
    for job_id, email in sorted(set(shared)):
        rules.append(rule(f"jobs/{validate_name(job_id, 'job id')}/results/**", email, "read"))
    return rules


def write_datasite_permissions(network: Network, email: str) -> None:
    """The permission files of ``email``'s datasite: public read, job submissions."""
    write_rules(network.public_dir(email), [rule("**", email, "admin"), rule("**", "*", "read")])
    write_rules(rds_dir(network, email), job_rules(_shared(network, email)))


def _shared(network: Network, email: str) -> list[tuple[str, str]]:
    out = []
    for entry in read_rules(rds_dir(network, email)):
        path, user = str(entry.get("path", "")), str(entry.get("user", ""))
        parts = path.split("/")
        if len(parts) == 4 and parts[0] == "jobs" and parts[2] == "results" and user != "*":
            out.append((parts[1], user))
    return out


def share_job_results(network: Network, owner: str, job_id: str, reader: str) -> Path:
    """Let ``reader`` (and only them, besides ``owner``) read ``job_id``'s results."""
    shared = [*_shared(network, owner), (job_id, validate_email(reader))]
    return write_rules(rds_dir(network, owner), job_rules(shared))


def inbox_rules(peers: Iterable[str]) -> list[Rule]:
    """The rules of ``app_data/flwr/<app>/``: only ``peers`` read and drop message files."""
    rules = []
    for peer in sorted(set(peers)):
        validate_email(peer)
        rules += [rule("inbox/*", peer, "read", "create"), rule(PERM_FILE, peer, "read")]
    return rules


def grant_inbox(network: Network, email: str, app_name: str, peers: Iterable[str]) -> Path:
    """Let ``peers`` drop messages into ``email``'s inbox for ``app_name`` (adds to the ones
    already granted: one aggregator may run the app with other datasites later)."""
    folder = network.flwr_dir(email, app_name)
    granted = {str(r.get("user")) for r in read_rules(folder) if r.get("path") == "inbox/*"}
    return write_rules(folder, inbox_rules(granted | set(peers)))


def peers_of(config: ProjectConfig, email: str) -> list[str]:
    """Who writes into ``email``'s inbox in this project."""
    return list(config.datasites) if email == config.aggregator else [config.aggregator]


def grant_run(network: Network, email: str, config: ProjectConfig) -> Path:
    """``email``'s inbox for the project's app, open to the project's other parties."""
    return grant_inbox(network, email, config.app_name, peers_of(config, email))


def granted(network: Network, owner: str, app_name: str, peer: str) -> bool:
    """Whether ``owner``'s inbox grant for ``peer`` is visible here (it reached the server)."""
    return any(
        r.get("path") == "inbox/*" and r.get("user") == peer
        for r in read_rules(network.flwr_dir(owner, app_name))
    )


def wait_for_grants(
    network: Network, config: ProjectConfig, email: str, timeout: float
) -> list[str]:
    """Wait until every datasite's inbox is open to the aggregator ``email`` (a message
    dropped before that would be refused by the server); returns those still closed."""
    deadline = time.monotonic() + timeout
    missing = list(config.datasites)
    while missing:
        missing = [d for d in missing if not granted(network, d, config.app_name, email)]
        if not missing or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    return missing


def grant_job_inbox(network: Network, owner: str, project_dir: Path) -> Path | None:
    """At approval: open ``owner``'s inbox to the aggregator of the approved project (None
    when the code is not a bootstrapped syft_flwr project)."""
    try:
        config = load_project_config(project_dir)
    except (OSError, ValueError):
        return None
    if owner not in config.datasites:
        return None
    return grant_run(network, owner, config)
