"""The registry on SQLite and PostgreSQL: versions, checksums, gated promotion, rollback, retention."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from rewardloop.registry import ArtifactError, JsonGateEvidence, Registry, RegistryError, checksum, semver_key
from rewardloop.store.registry import AliasConflict, move_alias, read_versions
from rewardloop.types import AliasEvent


@dataclass
class Gate:
    """A stand-in for the evaluation engineer's gate report."""

    passed: bool
    checks: tuple[tuple[str, bool], ...] = ()

    def to_dict(self):
        return {"passed": self.passed, "checks": [{"name": n, "passed": p} for n, p in self.checks]}


PASS = Gate(True, (("min_accuracy", True),))
FAIL = Gate(False, (("min_accuracy", True), ("max_ece", False)))


def make_artifact(tmp_path: Path, name: str, weights: str) -> Path:
    d = tmp_path / "src" / name
    (d / "sub").mkdir(parents=True)
    (d / "weights.json").write_text(weights)
    (d / "sub" / "config.json").write_text('{"labels": ["a", "b"]}')
    return d


@pytest.fixture
def reg(store, tmp_path):
    return Registry(store, tmp_path / "registry")


@pytest.fixture
def sqlite_reg(sqlite_store, tmp_path):
    """For tables of bad inputs, refused before any dialect-specific SQL: SQLite suffices."""
    return Registry(sqlite_store, tmp_path / "registry")


def register(reg, tmp_path, version, weights=None, **kw):
    art = make_artifact(tmp_path, f"m{version}", weights or f'{{"w": "{version}"}}')
    return reg.register("intent", art, kind="classifier", version=version, **kw)


def test_duplicate_version_is_refused(reg, tmp_path):
    register(reg, tmp_path, "1.0.0")
    with pytest.raises(RegistryError, match=r"version: intent@1\.0\.0 is registered already"):
        reg.register("intent", make_artifact(tmp_path, "other", "{}"), "classifier", "1.0.0")
    assert [v.version for v in reg.versions("intent")] == ["1.0.0"]


def test_register_copies_and_checksums(reg, tmp_path):
    art = make_artifact(tmp_path, "m", '{"w": [1, 2, 3]}')
    pv = reg.register("intent", art, "classifier", "1.0.0", config={"lr": 0.1}, metrics={"accuracy": 0.91})
    path = Path(pv.artifact_path)
    assert path == (tmp_path / "registry" / "intent" / "1.0.0").resolve()
    assert (path / "sub" / "config.json").read_text() == '{"labels": ["a", "b"]}'
    assert pv.checksum == checksum(art) == checksum(path)
    (art / "weights.json").write_text("changed at the source")  # the registered copy is unaffected
    assert reg.artifact_path("intent@1.0.0") == path
    got = reg.get("intent", "1.0.0")
    assert (got.config, got.metrics, got.kind) == ({"lr": 0.1}, {"accuracy": 0.91}, "classifier")


def test_version_defaults_to_next_patch_and_lineage_is_kept(reg, tmp_path):
    v1 = register(reg, tmp_path, None)
    assert v1.version == "0.1.0"
    v2 = reg.register(
        "intent",
        make_artifact(tmp_path, "x", "{}"),
        "classifier",
        parent_version="0.1.0",
        training_run_id="r1",
    )
    assert (v2.version, v2.parent_version, v2.training_run_id) == ("0.1.1", "0.1.0", "r1")
    assert reg.next_version("intent", "minor") == "0.2.0"
    assert reg.next_version("intent", "major") == "1.0.0"


def test_semver_order():
    ordered = ["0.9.0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta", "1.0.0", "1.2.0", "1.10.0"]
    assert sorted(reversed(ordered), key=semver_key) == ordered


def test_tampered_or_missing_artifact_is_refused_on_load(reg, tmp_path):
    pv = register(reg, tmp_path, "1.0.0")
    path = Path(pv.artifact_path)
    (path / "weights.json").write_text('{"w": "evil"}')
    with pytest.raises(
        ArtifactError, match=r"intent@1\.0\.0: .*does not match its checksum.*changed: weights\.json"
    ):
        reg.artifact_path("intent@1.0.0")
    (path / "weights.json").write_text('{"w": "1.0.0"}')
    assert reg.artifact_path("intent@1.0.0") == path  # restored bytes verify again
    (path / "extra.bin").write_bytes(b"\x00")
    with pytest.raises(ArtifactError, match=r"added: extra\.bin"):
        reg.artifact_path("intent@1.0.0")
    (path / "extra.bin").unlink()
    (path / "sub" / "config.json").unlink()
    with pytest.raises(ArtifactError, match=r"missing: sub/config\.json"):
        reg.artifact_path("intent@1.0.0")
    import shutil

    shutil.rmtree(path)
    with pytest.raises(ArtifactError, match=r"is missing; it cannot be loaded"):
        reg.artifact_path("intent@1.0.0")


def test_promote_needs_a_passing_gate_report(reg, tmp_path):
    register(reg, tmp_path, "1.0.0")
    register(reg, tmp_path, "1.1.0")
    reg.activate("intent@1.0.0", reason="first deployment")
    with pytest.raises(RegistryError, match=r"promote: intent@1\.1\.0 has no gate report"):
        reg.promote("intent@1.1.0")
    with pytest.raises(RegistryError, match=r"did not pass \(failed: max_ece\)"):
        reg.promote("intent@1.1.0", FAIL)
    with pytest.raises(RegistryError, match=r"gate_report: needs a boolean \.passed"):
        reg.promote("intent@1.1.0", object())  # type: ignore[arg-type]
    assert reg.aliases("intent") == {"champion": "1.0.0"}
    assert len(reg.history("intent")) == 1  # refusals change nothing

    event = reg.promote("intent@1.1.0", PASS, actor="ann", reason="better on golden set")
    assert (event.from_version, event.to_version, event.action, event.forced) == (
        "1.0.0",
        "1.1.0",
        "promote",
        False,
    )
    assert event.gate_report == PASS.to_dict()
    assert reg.resolve("intent").version == "1.1.0"
    with pytest.raises(RegistryError, match=r"is 1\.1\.0 already"):
        reg.promote("intent@1.1.0", PASS)


def test_forced_promotion_is_recorded_as_forced(reg, tmp_path):
    register(reg, tmp_path, "1.0.0")
    register(reg, tmp_path, "1.1.0")
    reg.activate("intent@1.0.0")
    reg.promote("intent@1.1.0", FAIL, force=True, actor="bob", reason="hotfix")
    last = reg.history("intent")[-1]
    assert last.forced and last.actor == "bob" and last.reason == "hotfix"
    assert last.gate_report == FAIL.to_dict()


def test_rollback_restores_the_exact_previous_artifact(reg, tmp_path):
    v1 = register(reg, tmp_path, "1.0.0", weights='{"w": [0.25, -1.5]}')
    register(reg, tmp_path, "2.0.0", weights='{"w": [9, 9]}')
    reg.activate("intent@1.0.0")
    before = {p.name: p.read_bytes() for p in reg.artifact_path("intent@champion").rglob("*") if p.is_file()}
    reg.promote("intent@2.0.0", PASS, actor="ann", reason="gate passed")
    assert reg.artifact_path("intent").name == "2.0.0"

    event = reg.rollback("intent", actor="oncall", reason="error rate up")
    assert (event.action, event.from_version, event.to_version) == ("rollback", "2.0.0", "1.0.0")
    restored = reg.artifact_path("intent@champion")
    assert restored == Path(v1.artifact_path)
    assert {p.name: p.read_bytes() for p in restored.rglob("*") if p.is_file()} == before
    assert checksum(restored) == v1.checksum

    moves = [(e.action, e.from_version, e.to_version, e.actor) for e in reg.history("intent", "champion")]
    assert moves == [
        ("activate", None, "1.0.0", moves[0][3]),
        ("promote", "1.0.0", "2.0.0", "ann"),
        ("rollback", "2.0.0", "1.0.0", "oncall"),
    ]
    times = [e.created_at for e in reg.history("intent")]
    assert times == sorted(times) and len(set(times)) == len(times)
    with pytest.raises(RegistryError, match=r"has no earlier version to return to"):
        reg.rollback("intent")


def test_rollbacks_undo_promotions_in_order(reg, tmp_path):
    for v in ("1.0.0", "1.1.0", "1.2.0"):
        register(reg, tmp_path, v)
    reg.activate("intent@1.0.0")
    reg.promote("intent@1.1.0", PASS)
    reg.promote("intent@1.2.0", PASS)
    assert reg.previous("intent") == "1.1.0"
    assert reg.rollback("intent").to_version == "1.1.0"
    assert reg.rollback("intent").to_version == "1.0.0"


def test_rollback_refuses_a_tampered_previous_artifact(reg, tmp_path):
    v1 = register(reg, tmp_path, "1.0.0")
    register(reg, tmp_path, "1.1.0")
    reg.activate("intent@1.0.0")
    reg.promote("intent@1.1.0", PASS)
    (Path(v1.artifact_path) / "weights.json").write_text("tampered")
    with pytest.raises(ArtifactError, match="does not match its checksum"):
        reg.rollback("intent")
    assert reg.resolve("intent").version == "1.1.0"


def test_activate_only_a_first_or_former_champion(reg, tmp_path):
    for v in ("1.0.0", "1.1.0", "1.2.0"):
        register(reg, tmp_path, v)
    reg.activate("intent@1.0.0")
    with pytest.raises(RegistryError, match=r"1\.1\.0 was never champion; promote it with a gate report"):
        reg.activate("intent@1.1.0")
    reg.promote("intent@1.1.0", PASS)
    event = reg.activate("intent@1.0.0", reason="back to the known good one")
    assert (event.action, event.from_version, event.to_version) == ("activate", "1.1.0", "1.0.0")


def test_aliases_of_any_name(reg, tmp_path):
    register(reg, tmp_path, "1.0.0")
    register(reg, tmp_path, "1.1.0")
    reg.set_alias("intent@1.1.0", "challenger", reason="canary")
    reg.set_alias("intent@1.0.0", "staging-eu")
    assert reg.resolve("intent@challenger").version == "1.1.0"
    assert reg.aliases("intent") == {"challenger": "1.1.0", "staging-eu": "1.0.0"}
    reg.remove_alias("intent", "staging-eu")
    assert [e.action for e in reg.history("intent")] == ["assign", "assign", "remove"]
    with pytest.raises(RegistryError, match="champion moves only through promote"):
        reg.set_alias("intent@1.0.0", "champion")


def test_stale_alias_move_is_refused(store, reg, tmp_path):
    register(reg, tmp_path, "1.0.0")
    register(reg, tmp_path, "1.1.0")
    reg.activate("intent@1.0.0")
    stale = AliasEvent("intent", "champion", None, "1.1.0", "promote", actor="racer")
    with pytest.raises(AliasConflict, match=r"points at 1\.0\.0, not nothing"):
        move_alias(store, stale)
    assert reg.resolve("intent").version == "1.0.0"
    assert len(reg.history("intent")) == 1


def test_retention_keeps_last_n_and_every_aliased_version(store, tmp_path):
    reg = Registry(store, tmp_path / "registry", keep_last=2)
    for v in ("1.0.0", "1.1.0"):
        register(reg, tmp_path, v)
    reg.activate("intent@1.0.0")
    reg.promote("intent@1.1.0", PASS)  # 1.0.0 is now the rollback target: kept too
    register(reg, tmp_path, "1.2.0")
    register(reg, tmp_path, "1.3.0")
    reg.set_alias("intent@1.2.0", "challenger")
    register(reg, tmp_path, "1.4.0")
    kept = [v.version for v in reg.versions("intent")]
    assert kept == ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0"]  # 1.2.0 aliased, 1.3.0/1.4.0 newest
    reg.remove_alias("intent", "challenger")
    register(reg, tmp_path, "1.5.0")
    kept = [v.version for v in reg.versions("intent")]
    assert kept == ["1.0.0", "1.1.0", "1.4.0", "1.5.0"]
    assert not (tmp_path / "registry" / "intent" / "1.2.0").exists()
    assert not (tmp_path / "registry" / "intent" / "1.3.0.manifest.json").exists()
    assert reg.rollback("intent").to_version == "1.0.0"


BAD_REGISTRATIONS = [
    (dict(policy="in/tent"), "policy: 'in/tent' must be letters"),
    (dict(version="1.0"), "version: '1.0' is not a semantic version"),
    (dict(version="v1.0.0"), "version: 'v1.0.0' is not a semantic version"),
    (dict(kind="ranker"), "kind: must be one of classifier, router, reranker, generator, set; got 'ranker'"),
    (dict(metrics={"accuracy": "high"}), "metrics.accuracy: must be a finite number"),
    (dict(metrics={"loss": float("nan")}), "metrics.loss: must be a finite number"),
    (dict(parent_version="0.9.0"), r"parent_version: intent@0\.9\.0 is not registered"),
    (dict(artifact="nowhere"), "artifact: nowhere does not exist"),
    (dict(version="1.0.0"), r"version: intent@1\.0\.0 is registered already"),
]


@pytest.mark.parametrize(("override", "message"), BAD_REGISTRATIONS)
def test_bad_registrations_are_refused_and_store_nothing(sqlite_reg, tmp_path, override, message):
    reg = sqlite_reg
    register(reg, tmp_path, "1.0.0")
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "registry").rglob("*"))
    args = dict(
        policy="intent", artifact=make_artifact(tmp_path, "new", "{}"), kind="classifier", version="2.0.0"
    )
    args.update(override)
    with pytest.raises(RegistryError, match=message):
        reg.register(**args)
    assert [v.version for v in read_versions(reg.store)] == ["1.0.0"]
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "registry").rglob("*")) == before


BAD_REFS = [
    ("intent@2.0.0", r"version: intent@2\.0\.0 is not registered \(known: 1\.0\.0\)"),
    ("intent@canary", r"ref: intent has no alias 'canary' \(aliases: none\)"),
    ("", "ref: expected 'policy@version'"),
]


@pytest.mark.parametrize(("ref", "message"), BAD_REFS)
def test_bad_refs(sqlite_reg, tmp_path, ref, message):
    reg = sqlite_reg
    register(reg, tmp_path, "1.0.0")
    with pytest.raises(RegistryError, match=message):
        reg.resolve(ref)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be a JSON object, got list"),
        ({"checks": []}, "needs a boolean 'passed' field, got None"),
        ({"passed": "yes"}, "needs a boolean 'passed' field, got 'yes'"),
    ],
)
def test_gate_report_json_is_validated(data, message):
    with pytest.raises(RegistryError, match=message):
        JsonGateEvidence.from_mapping(data)


def test_artifact_kept_in_place_is_still_verified(reg, tmp_path):
    art = make_artifact(tmp_path, "inplace", '{"w": 1}')
    pv = reg.register("intent", art, "classifier", "1.0.0", copy=False)
    assert Path(pv.artifact_path) == art.resolve()
    assert not (tmp_path / "registry" / "intent" / "1.0.0").exists()
    (art / "weights.json").write_text('{"w": 2}')
    with pytest.raises(ArtifactError, match=r"changed: weights\.json"):
        reg.artifact_path("intent@1.0.0")


# -- projects (issue 13, item 2) --------------------------------------------------------------------


def test_a_policy_belongs_to_the_project_that_registered_it(store, tmp_path):
    mine = Registry(store, tmp_path / "registry", project="a")
    theirs = Registry(store, tmp_path / "registry", project="b")
    register(mine, tmp_path, "1.0.0")
    register(mine, tmp_path, "1.1.0")
    mine.activate("intent@1.0.0")
    assert mine.owner("intent") == "a"
    # Project b sees nothing of it and can change nothing, before any decision was logged.
    unknown = r"policy: intent is not registered in project 'b'"
    for call in (
        lambda: theirs.resolve("intent"),
        lambda: theirs.get("intent", "1.0.0"),
        lambda: theirs.aliases("intent"),
        lambda: theirs.history("intent"),
        lambda: theirs.promote("intent@1.1.0", force=True),
        lambda: theirs.rollback("intent"),
        lambda: theirs.activate("intent@1.1.0"),
        lambda: theirs.set_alias("intent@1.1.0", "challenger"),
        lambda: theirs.apply_retention("intent", 1),
        lambda: register(theirs, tmp_path, "9.0.0"),
    ):
        with pytest.raises(RegistryError, match=unknown):
            call()
    assert theirs.versions() == [] and theirs.policies() == []
    assert mine.policies() == ["intent"] and mine.resolve("intent").version == "1.0.0"
    assert [e.to_version for e in mine.history("intent")] == ["1.0.0"]
    # The operator's view (project=None) sees every project's policies.
    assert Registry(store, tmp_path / "registry", project=None).policies() == ["intent"]


def test_migration_gives_old_policies_the_project_of_their_first_decision(tmp_path):
    from sqlalchemy import text

    from rewardloop.store.engine import make_engine, upgrade
    from rewardloop.store.registry import policy_projects

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0001")
    with engine.begin() as conn:
        for policy in ("news", "intent"):
            conn.execute(
                text(
                    "INSERT INTO policy_versions (policy, version, kind, artifact_path, checksum, "
                    "created_at) VALUES (:p, '1.0.0', 'classifier', '/x', 'c', '2026-01-01 00:00:00')"
                ),
                {"p": policy},
            )
        conn.execute(
            text(
                "INSERT INTO decisions (id, policy, policy_version, kind, actions, action, action_dist, "
                "pscore, confidence, meta, created_at) VALUES ('d1', 'news', '1.0.0', 'classifier', "
                """'["a"]', 'a', '[1.0]', 1.0, 1.0, '{"project": "press"}', '2026-01-01 00:00:00')"""
            )
        )
    upgrade(engine)
    from rewardloop.store import Store

    assert policy_projects(Store(engine)) == {"news": "press", "intent": "default"}
    engine.dispose()
