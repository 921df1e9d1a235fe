"""The policy registry: versions with checksummed artifacts, aliases, gated promotion and rollback.

A version is an artifact folder copied under ``root/<policy>/<version>/`` (or, with ``copy=False``,
kept where it is), its sha256 checksum (see :mod:`rewardloop.registry.artifacts`), a semantic version,
its kind, config, metrics and lineage (parent version, training run). Aliases (``champion``,
``challenger`` or any name) point at versions; every move of an alias is an append-only event saying
who moved it, when, from where to where, why, and with which gate report.
"""

from __future__ import annotations

import getpass
import math
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from rewardloop.config.faults import fault_point
from rewardloop.registry.artifacts import (
    MANIFEST_SUFFIX,
    ArtifactError,
    checksum_of_manifest,
    copy_artifact,
    manifest,
    verify,
    write_manifest,
)
from rewardloop.store import Store
from rewardloop.store.insights import DEFAULT_PROJECT
from rewardloop.store.registry import (
    RegistryStoreError,
    delete_versions,
    get_alias,
    get_version,
    insert_version,
    move_alias,
    policy_project,
    policy_projects,
    read_alias_events,
    read_aliases,
    read_versions,
)
from rewardloop.types import AliasEvent, DecisionKind, PolicyVersion, RecordError

CHAMPION = "champion"
CHALLENGER = "challenger"

# Semantic Versioning 2.0.0, the regular expression semver.org recommends.
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
# Alias names start with a letter, so that ``policy@<x>`` is never ambiguous between alias and version.
_ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,99}$")
# Policy names become folder names: no separators, no "@".
_POLICY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")


class RegistryError(ValueError):
    """A registry operation was refused; the message names what was wrong. Nothing changed."""


class RegistryNotFound(RegistryError, LookupError):
    """The policy, version or alias named does not exist (in this project)."""


@runtime_checkable
class GateEvidence(Protocol):
    """What ``promote`` needs from a release gate's report: did it pass, and a JSON-ready record."""

    @property
    def passed(self) -> bool: ...

    def to_dict(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class JsonGateEvidence:
    """A gate report read back from the JSON the ``rewardloop gate`` command writes.

    >>> JsonGateEvidence({"passed": True, "checks": []}).passed
    True
    """

    data: Mapping[str, Any]

    @property
    def passed(self) -> bool:
        return self.data.get("passed") is True

    def to_dict(self) -> Mapping[str, Any]:
        return dict(self.data)

    @classmethod
    def from_mapping(cls, data: Any, source: str = "gate report") -> JsonGateEvidence:
        if not isinstance(data, Mapping):
            raise RegistryError(f"{source}: must be a JSON object, got {type(data).__name__}")
        if not isinstance(data.get("passed"), bool):
            raise RegistryError(f"{source}: needs a boolean 'passed' field, got {data.get('passed')!r}")
        return cls(dict(data))


def semver_key(version: str) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
    """Sort key of a semantic version: a release sorts after its pre-releases (semver.org §11)."""
    m = _SEMVER.match(version)
    if m is None:
        raise RegistryError(f"version: {version!r} is not a semantic version MAJOR.MINOR.PATCH (e.g. 1.4.0)")
    pre = m.group(4)
    parts: tuple[tuple[int, int | str], ...] = ()
    if pre:
        parts = tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)), 0 if pre else 1, parts)


def _failed_checks(report: Mapping[str, Any]) -> str:
    checks = report.get("checks")
    names: list[str] = []
    if isinstance(checks, list):
        names = [
            str(c.get("name", "?")) for c in checks if isinstance(c, Mapping) and c.get("passed") is False
        ]
    elif isinstance(checks, Mapping):
        names = [str(k) for k, c in checks.items() if isinstance(c, Mapping) and c.get("passed") is False]
    return f" (failed: {', '.join(names)})" if names else ""


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (containers)
        return "rewardloop"


def attributed_actor(actor: str | None) -> str:
    """Who acts, for the history: the OS user, and the name given (``--actor``) if it differs.

    A name typed on a command line is free text; the OS user beside it is what the machine knows.

    >>> attributed_actor(None) == _default_actor()
    True
    >>> attributed_actor("release-bot").startswith("release-bot (OS user ")
    True
    """
    user = _default_actor()
    if actor is None or not actor.strip() or actor.strip() == user:
        return user
    return f"{actor.strip()} (OS user {user})"


def _check_candidate(report: Mapping[str, Any], pv: PolicyVersion) -> None:
    """Refuse a gate report that names another policy or version as its candidate.

    ``rewardloop gate --policy NAME@VERSION`` writes ``"candidate": "NAME@VERSION"``; a report whose
    candidate is not of that form (a predictions folder's name) cannot be matched and is taken as is.
    """
    candidate = report.get("candidate")
    if not isinstance(candidate, str) or "@" not in candidate:
        return
    if candidate != f"{pv.policy}@{pv.version}":
        raise RegistryError(
            f"gate_report: the report is for {candidate}, not {pv.policy}@{pv.version}; run the gate "
            f"on {pv.policy}@{pv.version} and pass that report"
        )


class Registry:
    """Versions, aliases, promotion history and rollback for every policy in one store.

    Parameters
    ----------
    store : Store
        Where versions, aliases and alias events live.
    root : path
        The folder artifacts are copied into (``root/<policy>/<version>/``).
    keep_last : int, optional
        Retention: after each registration, keep only the newest ``keep_last`` versions of that policy,
        never one an alias points at nor the champion a rollback would return to. ``None`` keeps all.
    project : str or None, default "default"
        The caller's project. A policy belongs to the project that registered its first version; every
        read and write here (register, resolve, get, aliases, promote, rollback, history, list) sees only
        this project's policies, and another project's policy is "not registered" exactly like an
        unknown one. ``None`` is the operator's view of every project (the HTTP service checks the
        caller's project itself, per request).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> tmp = pathlib.Path(tempfile.mkdtemp()); art = tmp / "model"; art.mkdir()
    >>> _ = (art / "state.json").write_text('{"w": [1, 2]}')
    >>> reg = Registry(Store.open("sqlite://"), tmp / "registry")
    >>> v1 = reg.register("intent", art, kind="classifier", version="1.0.0", metrics={"accuracy": 0.9})
    >>> _ = reg.activate("intent@1.0.0", reason="first deployment")
    >>> reg.resolve("intent@champion").version
    '1.0.0'
    """

    def __init__(
        self,
        store: Store,
        root: str | Path,
        keep_last: int | None = None,
        project: str | None = DEFAULT_PROJECT,
    ) -> None:
        if keep_last is not None and keep_last < 1:
            raise RegistryError(f"keep_last: must be >= 1 (or None to keep all), got {keep_last}")
        if project is not None and (not isinstance(project, str) or not project.strip()):
            raise RegistryError(f"project: must be a non-empty name or None, got {project!r}")
        self.store = store
        self.root = Path(root)
        self.keep_last = keep_last
        self.project = project

    def owner(self, policy: str) -> str | None:
        """The project that registered ``policy`` (None: not registered)."""
        return policy_project(self.store, policy)

    def _own(self, policy: str) -> None:
        """Refuse a policy another project registered, as if it did not exist (no name leaks)."""
        if self.project is None:
            return
        owner = self.owner(policy)
        if owner is not None and owner != self.project:
            raise RegistryNotFound(f"policy: {policy} is not registered in project {self.project!r}")

    def _visible(self, policy: str, projects: Mapping[str, str]) -> bool:
        return self.project is None or projects.get(policy, self.project) == self.project

    # -- versions ------------------------------------------------------------------------------------

    def _manifest_path(self, policy: str, version: str) -> Path:
        return self.root / policy / f"{version}{MANIFEST_SUFFIX}"

    def next_version(self, policy: str, part: Literal["major", "minor", "patch"] = "patch") -> str:
        """The version after the highest registered one (``0.1.0`` for a new policy)."""
        self._own(policy)
        known = [v.version for v in read_versions(self.store, policy)]
        if not known:
            return "0.1.0"
        major, minor, patch, *_ = semver_key(max(known, key=semver_key))
        if part == "major":
            return f"{major + 1}.0.0"
        if part == "minor":
            return f"{major}.{minor + 1}.0"
        return f"{major}.{minor}.{patch + 1}"

    def register(
        self,
        policy: str,
        artifact: str | Path,
        kind: DecisionKind,
        version: str | None = None,
        config: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        parent_version: str | None = None,
        training_run_id: str | None = None,
        copy: bool = True,
    ) -> PolicyVersion:
        """Register an artifact folder (or file) as a new version of ``policy`` and return it.

        ``version`` defaults to the next patch version. With ``copy`` (the default) the artifact is
        copied under the registry root, so later edits of the source cannot change what was
        registered; without it, it is kept in place and still checksummed. Refused (nothing stored,
        nothing copied) for a bad name or version, a version that exists, an unknown parent, or
        non-numeric metrics.
        """
        if not isinstance(policy, str) or not _POLICY.match(policy):
            raise RegistryError(f"policy: {policy!r} must be letters, digits, '_', '.', '-' (no '@' or '/')")
        self._own(policy)
        version = version or self.next_version(policy)
        semver_key(version)
        clean_metrics: dict[str, float] = {}
        for key, value in (metrics or {}).items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise RegistryError(f"metrics.{key}: must be a finite number, got {value!r}")
            clean_metrics[str(key)] = float(value)
        if get_version(self.store, policy, version) is not None:
            raise RegistryError(f"version: {policy}@{version} is registered already")
        if parent_version is not None and get_version(self.store, policy, parent_version) is None:
            raise RegistryError(f"parent_version: {policy}@{parent_version} is not registered")
        src = Path(artifact)
        if not src.exists():
            raise RegistryError(f"artifact: {src} does not exist")
        dest = (self.root / policy / version) if copy else src.resolve()
        manifest_path = self._manifest_path(policy, version)
        created: list[Path] = []
        try:
            if copy:
                copy_artifact(src, dest)
                created.append(dest)
                fault_point("registry.artifact_copied")  # crash-safety tests only (no-op otherwise)
            files = manifest(dest)
            if not files:
                raise RegistryError(f"artifact: {src} holds no files")
            manifest_path.parent.mkdir(parents=True, exist_ok=True)
            write_manifest(manifest_path, files)
            created.append(manifest_path)
            pv = PolicyVersion(
                policy=policy,
                version=version,
                kind=kind,
                artifact_path=str(dest.resolve()),
                checksum=checksum_of_manifest(files),
                config=dict(config or {}),
                metrics=clean_metrics,
                parent_version=parent_version,
                training_run_id=training_run_id,
            )
            insert_version(self.store, pv, self.project or DEFAULT_PROJECT)
        except (RecordError, RegistryStoreError, ArtifactError) as err:
            self._remove_paths(created)
            raise RegistryError(str(err)) from None
        except BaseException:
            self._remove_paths(created)
            raise
        if self.keep_last is not None:
            self.apply_retention(policy)
        return pv

    @staticmethod
    def _remove_paths(paths: list[Path]) -> None:
        for p in paths:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)

    def get(self, policy: str, version: str) -> PolicyVersion:
        self._own(policy)
        pv = get_version(self.store, policy, version)
        if pv is None:
            known = sorted((v.version for v in read_versions(self.store, policy)), key=semver_key)
            raise RegistryNotFound(
                f"version: {policy}@{version} is not registered (known: {', '.join(known) or 'none'})"
            )
        return pv

    def versions(self, policy: str | None = None) -> list[PolicyVersion]:
        """Registered versions of this project's policies (or of one), oldest first."""
        projects = policy_projects(self.store)
        return [v for v in read_versions(self.store, policy) if self._visible(v.policy, projects)]

    def policies(self) -> list[str]:
        """This project's registered policies, by name."""
        return sorted({v.policy for v in self.versions()})

    def aliases(self, policy: str) -> dict[str, str]:
        self._own(policy)
        return read_aliases(self.store, policy)

    def _split(self, ref: str) -> tuple[str, str]:
        if not isinstance(ref, str) or not ref.strip():
            raise RegistryError(f"ref: expected 'policy@version' or 'policy@alias', got {ref!r}")
        policy, _, target = ref.partition("@")
        return policy, target or CHAMPION

    def resolve(self, ref: str) -> PolicyVersion:
        """The version ``ref`` names: ``"intent@1.2.0"``, ``"intent@challenger"``, ``"intent"`` (champion)."""
        policy, target = self._split(ref)
        self._own(policy)
        if _SEMVER.match(target):
            return self.get(policy, target)
        version = get_alias(self.store, policy, target)
        if version is None:
            have = self.aliases(policy)
            listed = ", ".join(f"{a}→{v}" for a, v in sorted(have.items())) or "none"
            raise RegistryNotFound(f"ref: {policy} has no alias {target!r} (aliases: {listed})")
        return self.get(policy, version)

    def verify(self, pv: PolicyVersion) -> Path:
        """Check the artifact against its checksum; its path, or :class:`ArtifactError`."""
        path = Path(pv.artifact_path)
        verify(
            path, pv.checksum, self._manifest_path(pv.policy, pv.version), what=f"{pv.policy}@{pv.version}"
        )
        return path

    def artifact_path(self, ref: str) -> Path:
        """The verified artifact folder of ``ref``; a missing or tampered artifact raises ArtifactError."""
        return self.verify(self.resolve(ref))

    # -- aliases -------------------------------------------------------------------------------------

    def _move(
        self,
        policy: str,
        alias: str,
        to_version: str | None,
        action: Literal["promote", "rollback", "activate", "assign", "remove"],
        actor: str | None,
        reason: str,
        forced: bool = False,
        gate_report: Mapping[str, Any] | None = None,
    ) -> AliasEvent:
        if not _ALIAS.match(alias):
            raise RegistryError(f"alias: {alias!r} must start with a lower-case letter (a-z, 0-9, '_', '-')")
        self._own(policy)
        try:
            return move_alias(
                self.store,
                AliasEvent(
                    policy=policy,
                    alias=alias,
                    from_version=get_alias(self.store, policy, alias),
                    to_version=to_version,
                    action=action,
                    actor=actor or _default_actor(),
                    reason=reason,
                    forced=forced,
                    gate_report=gate_report,
                ),
            )
        except RegistryStoreError as err:
            raise RegistryError(str(err)) from None

    def set_alias(self, ref: str, alias: str, actor: str | None = None, reason: str = "") -> AliasEvent:
        """Point ``alias`` at the version ``ref`` names (not for ``champion``: use promote/activate)."""
        if alias == CHAMPION:
            raise RegistryError("alias: the champion moves only through promote, activate or rollback")
        pv = self.resolve(ref)
        return self._move(pv.policy, alias, pv.version, "assign", actor, reason)

    def remove_alias(self, policy: str, alias: str, actor: str | None = None, reason: str = "") -> AliasEvent:
        if alias == CHAMPION:
            raise RegistryError("alias: the champion cannot be removed, only rolled back or replaced")
        self._own(policy)
        if get_alias(self.store, policy, alias) is None:
            raise RegistryNotFound(f"alias: {policy} has no alias {alias!r}")
        return self._move(policy, alias, None, "remove", actor, reason)

    def promote(
        self,
        ref: str,
        gate_report: GateEvidence | None = None,
        *,
        force: bool = False,
        actor: str | None = None,
        reason: str = "",
        alias: str = CHAMPION,
    ) -> AliasEvent:
        """Make the version ``ref`` names the champion (or ``alias``), if its gate report passed.

        Refused without a gate report that passed, unless ``force=True``: the event then records
        ``forced`` and the (failing or absent) report, so a forced promotion is visible in history.
        A report whose ``candidate`` names another version is refused, forced or not.
        The artifact is verified first: a tampered artifact is never promoted.
        """
        pv = self.resolve(ref)
        report: Mapping[str, Any] | None = None
        if gate_report is not None:
            if not isinstance(gate_report, GateEvidence):
                raise RegistryError("gate_report: needs a boolean .passed and a .to_dict() method")
            report = dict(gate_report.to_dict())
            _check_candidate(report, pv)
        if not force:
            if gate_report is None:
                raise RegistryError(
                    f"promote: {pv.policy}@{pv.version} has no gate report; run the gate and pass its "
                    "report, or force (recorded as forced)"
                )
            if gate_report.passed is not True:
                raise RegistryError(
                    f"promote: the gate report for {pv.policy}@{pv.version} did not pass"
                    f"{_failed_checks(report or {})}; fix it, or force (recorded as forced)"
                )
        if get_alias(self.store, pv.policy, alias) == pv.version:
            raise RegistryError(f"promote: {pv.policy}@{alias} is {pv.version} already")
        self.verify(pv)
        return self._move(pv.policy, alias, pv.version, "promote", actor, reason, force, report)

    def activate(self, ref: str, *, actor: str | None = None, reason: str = "") -> AliasEvent:
        """Make a version champion without a new gate report, where that is safe.

        Allowed for the first version of a policy (no champion yet: nothing to compare against) and for
        a version that was champion before (it passed a gate, or was forced, then). Anything else needs
        :meth:`promote`.
        """
        pv = self.resolve(ref)
        current = get_alias(self.store, pv.policy, CHAMPION)
        if current == pv.version:
            raise RegistryError(f"activate: {pv.policy}@{CHAMPION} is {pv.version} already")
        earlier = {e.to_version for e in read_alias_events(self.store, pv.policy, CHAMPION)}
        if current is not None and pv.version not in earlier:
            raise RegistryError(
                f"activate: {pv.policy}@{pv.version} was never champion; promote it with a gate report"
            )
        self.verify(pv)
        return self._move(pv.policy, CHAMPION, pv.version, "activate", actor, reason)

    def _champion_stack(self, policy: str, alias: str = CHAMPION) -> list[str]:
        """The versions the alias held, each pushed by a move and popped by a rollback."""
        stack: list[str] = []
        for e in read_alias_events(self.store, policy, alias):
            if e.action == "rollback":
                if stack:
                    stack.pop()
                if e.to_version is not None and (not stack or stack[-1] != e.to_version):
                    stack.append(e.to_version)
            elif e.to_version is None:
                stack.clear()
            else:
                stack.append(e.to_version)
        return stack

    def previous(self, policy: str, alias: str = CHAMPION) -> str | None:
        """The version a rollback of ``alias`` would return to, if any."""
        self._own(policy)
        stack = self._champion_stack(policy, alias)
        return stack[-2] if len(stack) >= 2 else None

    def rollback(
        self, policy: str, *, actor: str | None = None, reason: str = "", alias: str = CHAMPION
    ) -> AliasEvent:
        """Point ``alias`` back at the version it held before its last move (undoing promotions in order).

        The previous artifact is verified first, so a rollback restores exactly what ran before, or
        refuses with the reason (missing or modified artifact, nothing to roll back to).
        """
        self._own(policy)
        current = get_alias(self.store, policy, alias)
        if current is None:
            raise RegistryError(f"rollback: {policy} has no {alias}")
        target = self.previous(policy, alias)
        if target is None:
            raise RegistryError(f"rollback: {policy}@{alias} ({current}) has no earlier version to return to")
        pv = get_version(self.store, policy, target)
        if pv is None:
            raise RegistryError(f"rollback: the previous {alias} {policy}@{target} is no longer registered")
        self.verify(pv)
        return self._move(policy, alias, target, "rollback", actor, reason or f"roll back from {current}")

    def history(self, policy: str, alias: str | None = None) -> list[AliasEvent]:
        """Every alias move of ``policy`` (or of one alias), oldest first."""
        self._own(policy)
        return read_alias_events(self.store, policy, alias)

    # -- retention -----------------------------------------------------------------------------------

    def apply_retention(self, policy: str, keep_last: int | None = None) -> list[str]:
        """Delete all but the newest ``keep_last`` versions of ``policy``; returns the deleted versions.

        Never deletes a version an alias points at, nor the champion a rollback would return to.
        Artifacts copied under the root are removed with their rows; artifacts kept in place are not
        touched (they were never the registry's).
        """
        self._own(policy)
        keep = keep_last if keep_last is not None else self.keep_last
        if keep is None or keep < 1:
            raise RegistryError(f"keep_last: must be >= 1, got {keep}")
        versions = read_versions(self.store, policy)
        protected = set(read_aliases(self.store, policy).values())
        back = self.previous(policy)
        if back is not None:
            protected.add(back)
        doomed = [v for v in versions[: max(0, len(versions) - keep)] if v.version not in protected]
        if not doomed:
            return []
        try:
            delete_versions(self.store, policy, [v.version for v in doomed])
        except RegistryStoreError as err:  # an alias moved onto one of them meanwhile
            raise RegistryError(str(err)) from None
        root = self.root.resolve()
        for v in doomed:
            path = Path(v.artifact_path)
            if path.is_dir() and path.resolve().is_relative_to(root):
                shutil.rmtree(path, ignore_errors=True)
            self._manifest_path(policy, v.version).unlink(missing_ok=True)
        return [v.version for v in doomed]
