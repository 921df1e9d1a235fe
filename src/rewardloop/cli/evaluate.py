"""``rewardloop eval``, ``gate`` and ``monitor``: golden-set runs, the release gate, regression checks.

Policies are loaded for evaluation by ONE function, :func:`load_policy_for_eval`: ``NAME@VERSION`` /
``NAME@alias`` through the registry, a policy folder, or a *predictions folder* (see its docstring).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from rewardloop.cli.common import (
    ComputeOption,
    ConfigOption,
    RayAddress,
    compute_config,
    console,
    err_console,
    exit_code_for,
    fail,
    open_store,
    parse_time,
    progress,
    project,
)
from rewardloop.config import ProjectConfig
from rewardloop.config.sections import GateConfig
from rewardloop.evaluation.gate import GateReport, OPEComparison, run_gate
from rewardloop.evaluation.golden import GoldenError, GoldenSet, load_golden
from rewardloop.evaluation.metrics import GoldenReport, evaluate_golden
from rewardloop.evaluation.offline import evaluate_candidate_on_logs
from rewardloop.evaluation.ope import OPEInputError, PolicyValueInterval
from rewardloop.store.files import jsonl_objects

# ----------------------------------------------------------------------------------- policy loading


class PolicyLoadError(ValueError):
    """A policy reference cannot be loaded for evaluation; the message says what is missing."""


class PolicyNotFound(PolicyLoadError, LookupError):
    """The policy, version or alias named is not registered (exit 3)."""


class PrecomputedPolicy:
    """A policy whose answers were computed elsewhere: ``predict_proba`` looks each text up.

    Implements the evaluation protocol (``labels``, ``predict_proba``, ``predict_proba_with_latency``).
    """

    def __init__(self, name: str, labels: Sequence[str], table: dict[str, tuple[list[float], float | None]]):
        self.name = name
        self.labels = list(labels)
        self._table = table

    def predict_proba_with_latency(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        rows, lat = [], []
        for t in texts:
            if t not in self._table:
                raise PolicyLoadError(
                    f"{self.name}: predictions.jsonl has no prediction for the text {t[:60]!r}"
                )
            proba, latency = self._table[t]
            rows.append(proba)
            lat.append(math.nan if latency is None else latency)
        lat_arr = np.asarray(lat, dtype=np.float64)
        return np.asarray(rows, dtype=np.float64), lat_arr

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.predict_proba_with_latency(texts)[0]


def load_policy_for_eval(ref: str, config: ProjectConfig | None = None) -> Any:
    """The policy ``ref`` names, as anything with ``name``, ``labels`` and ``predict_proba(texts)``.

    - ``NAME@VERSION`` or ``NAME@alias`` (``intent@champion``): resolved through the registry of the
      store in ``config``, its artifact verified against its checksum, then loaded;
    - a classifier artifact folder (with ``policy.json``): loaded as it is;
    - a predictions folder: ``labels.json`` (the label list, in probability-column order) and
      ``predictions.jsonl``, one line per text: ``{"text": ..., "proba": [...], "latency_ms": 12.5}``
      (``latency_ms`` optional) — for models that run outside rewardloop.
    """
    if "@" in ref and not Path(ref).exists():
        return _registry_policy(ref, config if config is not None else project(None))
    if (Path(ref) / "policy.json").is_file():
        from rewardloop.policies.classifier import ClassifierPolicy

        return ClassifierPolicy.load(ref)
    return _predictions_policy(ref)


def _registry_policy(ref: str, cfg: ProjectConfig) -> Any:
    from rewardloop.policies.classifier import ClassifierPolicy
    from rewardloop.registry import Registry, RegistryError

    store = open_store(cfg)
    try:
        registry = Registry(store, Path(cfg.experiments.registry_root))
        try:
            pv = registry.resolve(ref)
            path = registry.artifact_path(f"{pv.policy}@{pv.version}")
        except RegistryError as err:
            missing = isinstance(err, LookupError)
            raise (PolicyNotFound if missing else PolicyLoadError)(f"{ref}: {err}") from None
    finally:
        store.close()
    if pv.kind != "classifier":
        raise PolicyLoadError(
            f"{ref}: a {pv.kind} has no golden-set evaluation; evaluate it with `rewardloop ope`"
        )
    policy = ClassifierPolicy.load(path)
    policy.name = f"{pv.policy}@{pv.version}"
    return policy


def _predictions_policy(ref: str) -> PrecomputedPolicy:
    folder = Path(ref)
    if not folder.is_dir():
        raise PolicyLoadError(
            f"{ref}: neither NAME@VERSION, NAME@alias, a policy folder nor a predictions folder"
        )
    labels_file, preds_file = folder / "labels.json", folder / "predictions.jsonl"
    for f in (labels_file, preds_file):
        if not f.exists():
            raise PolicyLoadError(f"{folder}: missing {f.name}")
    try:
        labels = json.loads(labels_file.read_text())
    except json.JSONDecodeError as err:
        raise PolicyLoadError(f"{labels_file}: not valid JSON ({err.msg})") from None
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise PolicyLoadError(f"{labels_file}: must be a non-empty JSON list of label strings")
    table: dict[str, tuple[list[float], float | None]] = {}
    for n, row in jsonl_objects(preds_file, PolicyLoadError):
        if "text" not in row or "proba" not in row:
            raise PolicyLoadError(f'{preds_file} line {n}: expected {{"text": ..., "proba": [...]}}')
        text, proba = row["text"], row["proba"]
        if not isinstance(proba, list) or len(proba) != len(labels):
            raise PolicyLoadError(f"{preds_file} line {n}: 'proba' must list {len(labels)} probabilities")
        table[str(text)] = ([float(p) for p in proba], row.get("latency_ms"))
    return PrecomputedPolicy(folder.name, labels, table)


# ----------------------------------------------------------------------------------- helpers

USER_ERRORS = (GoldenError, PolicyLoadError, ValueError, OSError)
# Texts per policy call. One at a time took 5 min 50 s on 300 articles (a MiniLM pass per text);
# batches of 64 share each pass. Latency is then per batch / its size: `--batch-size 1` for one request's.
EVAL_BATCH_SIZE = 64


def _golden(path: Path | None, cfg_golden: str | None) -> GoldenSet:
    source = path if path is not None else (Path(cfg_golden) if cfg_golden else None)
    if source is None:
        raise fail("no golden set: pass --golden FILE or set evaluation.golden in rewardloop.yaml")
    try:
        return load_golden(source)
    except GoldenError as err:
        raise fail(str(err), exit_code_for(err)) from None


def _evaluate(
    ref: str, golden: GoldenSet, n_bins: int, batch_size: int, cfg: ProjectConfig | None = None
) -> GoldenReport:
    try:
        policy = load_policy_for_eval(ref, cfg)
        with progress() as bar:
            task = bar.add_task(f"evaluating {policy.name}", total=len(golden))
            report = evaluate_golden(
                policy,
                golden,
                batch_size=batch_size,
                n_bins=n_bins,
                progress=lambda done: bar.update(task, completed=done),
            )
    except USER_ERRORS as err:
        raise fail(str(err), exit_code_for(err)) from None
    return report


def _summary_table(report: GoldenReport) -> Table:
    t = Table(title=f"golden set: {report.policy}", show_header=False)
    crit = "n/a" if math.isnan(report.critical_accuracy) else f"{report.critical_accuracy:.1%}"
    t.add_row("items", str(report.n))
    t.add_row("accuracy", f"{report.accuracy:.1%}")
    t.add_row("critical accuracy", f"{crit} ({report.n_critical} items)")
    t.add_row("macro-F1 / weighted-F1", f"{report.macro_f1:.3f} / {report.weighted_f1:.3f}")
    t.add_row("ECE / Brier", f"{report.ece:.3f} / {report.brier:.3f}")
    if report.latency_ms:
        lat = report.latency_ms
        t.add_row("latency p50/p95/p99", f"{lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f} ms")
    return t


def _report_or_policy(
    ref: str, golden: GoldenSet | None, n_bins: int, cfg: ProjectConfig | None = None
) -> GoldenReport:
    """A saved golden report (``*.json`` file) or a policy reference evaluated on ``golden``."""
    path = Path(ref)
    if path.is_file() and path.suffix == ".json":
        try:
            return GoldenReport.from_json(path)
        except ValueError as err:
            raise fail(str(err), exit_code_for(err)) from None
    if golden is None:
        raise fail(f"{ref}: a policy needs a golden set (--golden FILE or evaluation.golden in the config)")
    return _evaluate(ref, golden, n_bins, EVAL_BATCH_SIZE, cfg)


def _ope_comparison(path: Path, estimator: str) -> OPEComparison:
    """Read ``{"value", "lower", "upper", "champion_value", ...}``, or an ``OPEReport.to_dict()`` with a
    ``champion_value`` added (the gate then reads the configured estimator's interval)."""
    try:
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "estimates" in data:
            if estimator not in data["estimates"]:
                raise fail(f"{path}: no {estimator!r} estimate (have: {', '.join(data['estimates'])})")
            data = {**data["estimates"][estimator], "champion_value": data["champion_value"]}
        iv = PolicyValueInterval(
            estimator=str(data.get("estimator", estimator)),
            value=float(data["value"]),
            mean=float(data.get("mean", data["value"])),
            lower=float(data["lower"]),
            upper=float(data["upper"]),
            alpha=float(data.get("alpha", 0.05)),
            n_bootstrap_samples=int(data.get("n_bootstrap_samples", 0)),
        )
        return OPEComparison(iv, float(data["champion_value"]))
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise fail(
            f"{path}: expected JSON with value, lower, upper, champion_value ({type(err).__name__}: {err})"
        ) from None


# ----------------------------------------------------------------------------------- commands


def eval_cmd(
    policy: Annotated[
        str,
        typer.Option(
            "--policy",
            "-p",
            help="the policy to evaluate: NAME@VERSION or NAME@alias from the registry (intent@champion), "
            "a policy folder, or a predictions folder (labels.json + predictions.jsonl)",
        ),
    ],
    golden: Annotated[
        Path | None,
        typer.Option(
            "--golden", "-g", help="golden set, JSONL or CSV (default: evaluation.golden in the config)"
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="report folder (default: evaluation.report_dir)")
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            min=1,
            help="texts per policy call; latency is then each batch's time / its size "
            "(1: one item at a time, a single request's latency, much slower)",
        ),
    ] = EVAL_BATCH_SIZE,
    show_misses: Annotated[int, typer.Option(help="misclassified items to list")] = 10,
    config: ConfigOption = None,
) -> None:
    """Run a policy on a golden set and write report.json, report.html and PNG figures.

    Reports accuracy (overall, on critical items, per class, category, priority and tag), calibration
    (ECE, Brier), latency p50/p95/p99 and the misclassified items with their line numbers.
    """
    cfg = project(config)
    gold = _golden(golden, cfg.evaluation.golden)
    report = _evaluate(policy, gold, cfg.evaluation.n_bins, batch_size, cfg)
    out_dir = out if out is not None else Path(cfg.evaluation.report_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from rewardloop.evaluation.plots import html_report  # matplotlib: imported only when drawing

    json_path = report.to_json(out_dir / "report.json")
    html_path = html_report(report, out_dir, name="report")
    console.print(_summary_table(report))
    if report.misclassified and show_misses > 0:
        t = Table(title=f"misclassified ({len(report.misclassified)})")
        for col in ("line", "id", "expected", "predicted", "conf", "critical", "text"):
            t.add_column(col)
        for m in report.misclassified[:show_misses]:
            t.add_row(
                str(m.line),
                m.id,
                m.expected,
                m.predicted,
                f"{m.confidence:.2f}",
                "yes" if m.critical else "",
                m.text[:50],
            )
        console.print(t)
    console.print(f"wrote {json_path} and {html_path}")


def gate_cmd(
    candidate: Annotated[
        str,
        typer.Option(
            "--candidate", help="candidate: a golden report .json (from `rewardloop eval`) or a policy"
        ),
    ],
    champion: Annotated[
        str | None, typer.Option("--champion", help="champion, same forms; omit for a first release")
    ] = None,
    golden: Annotated[
        Path | None,
        typer.Option("--golden", "-g", help="golden set used for policies (default: from the config)"),
    ] = None,
    ope: Annotated[
        Path | None,
        typer.Option(
            help="JSON with the candidate's OPE estimate and the champion's value: "
            '{"estimator": "dr", "value": .., "lower": .., "upper": .., "champion_value": ..}'
        ),
    ] = None,
    json_out: Annotated[Path | None, typer.Option(help="write the gate report as JSON here")] = None,
    md_out: Annotated[Path | None, typer.Option(help="write the gate report as Markdown here")] = None,
    config: ConfigOption = None,
) -> None:
    """Release gate for CI: check a candidate against the evaluation.gate thresholds of rewardloop.yaml.

    Exit code 0 when every configured check passes, 1 when any fails, 2 on bad input. Prints the
    Markdown report; --json-out and --md-out save it.
    """
    cfg = project(config)
    thresholds: GateConfig = cfg.evaluation.gate
    needs_golden = any(not (Path(r).is_file() and r.endswith(".json")) for r in [candidate, champion] if r)
    gold = _golden(golden, cfg.evaluation.golden) if needs_golden else None
    cand = _report_or_policy(candidate, gold, cfg.evaluation.n_bins, cfg)
    champ = _report_or_policy(champion, gold, cfg.evaluation.n_bins, cfg) if champion else None
    comparison = _ope_comparison(ope, thresholds.ope_estimator) if ope is not None else None
    report: GateReport = run_gate(cand, champ, thresholds, comparison)
    console.print(report.to_markdown(), markup=False, highlight=False, soft_wrap=True)  # no wrapping: CI logs
    if json_out is not None:
        json_out.write_text(json.dumps(report.to_dict(), indent=2))
    if md_out is not None:
        md_out.write_text(report.to_markdown())
    if report.passed:
        console.print(f"[green]gate passed[/green] ({len(report.checks)} checks)")
    else:
        err_console.print(f"[red]gate failed[/red]: {', '.join(c.name for c in report.failed)}")
    raise typer.Exit(report.exit_code)


def _encoder() -> Callable[[list[str]], Any]:
    from rewardloop.encoders import default_encoder  # heavy: only when asked for

    return default_encoder().encode


def monitor_cmd(
    policy: Annotated[str | None, typer.Option(help="only this policy (default: all)")] = None,
    window_hours: Annotated[
        float | None, typer.Option(help="window length (default: evaluation.monitor)")
    ] = None,
    now: Annotated[str | None, typer.Option(help="end of the window, ISO time (default: now, UTC)")] = None,
    webhook: Annotated[
        str | None, typer.Option(help="POST alerts here (default: evaluation.monitor)")
    ] = None,
    drift: Annotated[
        bool | None,
        typer.Option("--drift/--no-drift", help="run the input-drift checks (default: evaluation.monitor)"),
    ] = None,
    embeddings: Annotated[
        bool, typer.Option(help="also test the request texts' embeddings for drift (loads the encoder)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    config: ConfigOption = None,
) -> None:
    """Check stored decisions and feedback for regressions, per policy version and time window.

    Checks accuracy drop vs the previous window, p95 latency, calibration and one category dominating;
    and drift vs the previous window: the predicted-label mix and confidence (PSI), the embeddings
    (MMD, with --embeddings) and the feedback rate, each with a permutation or z-test p-value.
    Alerts go to the log and the webhook (retried, Slack-compatible); exit code 1 when any alert fires.
    """
    cfg = project(config)
    mcfg = cfg.evaluation.monitor
    updates: dict[str, Any] = {}
    if window_hours is not None:
        updates["window_hours"] = window_hours
    if webhook is not None:
        updates["webhook_url"] = webhook
    if drift is not None:
        updates["drift"] = drift
    mcfg = mcfg.model_copy(update=updates)
    end = parse_time(now, "--now")
    from rewardloop.evaluation.monitor import run_monitor, send_alerts  # the store: not for `eval`

    store = open_store(cfg)
    try:
        report = run_monitor(store, mcfg, now=end, policy=policy, embed=_encoder() if embeddings else None)
    finally:
        store.close()
    sent = send_alerts(report, mcfg)
    if as_json:
        console.print_json(json.dumps(report.to_dict(), default=str))
    else:
        t = Table(
            title=f"regression checks {report.window_start:%Y-%m-%d %H:%M} → "
            f"{report.window_end:%Y-%m-%d %H:%M}"
        )
        for col in ("policy@version", "check", "status", "figure", "threshold", "detail"):
            t.add_column(col)
        for c in report.checks:
            color = {"alert": "red", "ok": "green", "skipped": "yellow"}[c.status]
            fig = "" if c.figure is None else f"{c.figure:.4g}"
            t.add_row(
                f"{c.policy}@{c.version}",
                c.check,
                f"[{color}]{c.status}[/{color}]",
                fig,
                f"{c.threshold:g}",
                c.detail,
            )
        console.print(t)
        console.print(
            f"{len(report.alerts)} alert(s) in {len(report.checks)} checks"
            + ("" if sent else "; webhook failed")
        )
    raise typer.Exit(1 if report.alerts else 0)


def _print_ope(result: Any, candidate: str, policy: str, n_read: int) -> None:
    """The estimates table of ``rewardloop ope``, its diagnostics and warnings."""
    t = Table(title=f"{candidate} on {result.n_rounds} logged decisions of {policy}")
    for col in ("estimator", "value", "interval", "vs logged"):
        t.add_column(col)
    for est, iv in result.report.estimates.items():
        t.add_row(
            est,
            f"{iv.value:.4f}",
            f"[{iv.lower:.4f}, {iv.upper:.4f}]",
            f"{iv.value - result.logging_policy_value:+.4f}",
        )
    console.print(t)
    d = result.report.diagnostics
    console.print(
        f"logged policy value {result.logging_policy_value:.4f}; ESS {d.ess:.0f} of {d.n_rounds}; "
        f"propensity-1 share {d.deterministic_share:.0%}"
    )
    for w in d.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {w}")
    if result.estimated_propensities:
        err_console.print(
            f"[yellow]warning:[/yellow] {result.estimated_propensities} of the {n_read} decisions read "
            "have estimated propensities (import --estimate-propensities), not logged ones: these figures "
            "are estimates on estimates"
        )


def ope_cmd(
    candidate: Annotated[
        str,
        typer.Option(
            "--candidate",
            help="the candidate policy: NAME@VERSION, NAME@alias, a policy or predictions folder",
        ),
    ],
    policy: Annotated[str, typer.Option("--policy", help="whose logged decisions to evaluate on")],
    reward_spec: Annotated[
        str, typer.Option(help="compiled rewards to read, as NAME:VERSION (e.g. thumbs:1)")
    ],
    version: Annotated[str | None, typer.Option(help="only the decisions of this logged version")] = None,
    n_bootstrap: Annotated[int, typer.Option(help="bootstrap resamples for the intervals")] = 1000,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="write the report JSON here (gate --ope reads it)")
    ] = None,
    backend: ComputeOption = None,
    ray_address: RayAddress = None,
    config: ConfigOption = None,
) -> None:
    """Estimate a candidate's value on stored decisions (IPW, SNIPW, DM, DR with bootstrap intervals).

    The logging policy's own mean reward is reported as champion_value, so the output feeds
    `rewardloop gate --ope`. Diagnostics warn about low effective sample size and missing support.
    The bootstrap runs in compute.bootstrap_partitions parts, on Ray with --backend ray.
    """
    name, _, ver = reward_spec.partition(":")
    if not name or not ver.isdigit():
        raise fail(f"--reward-spec: expected NAME:VERSION such as thumbs:1, got {reward_spec!r}")
    cfg = project(config)
    # SQLAlchemy: imported by the commands that read the store, not by `eval`
    from rewardloop.loop.compute import ComputeBackend, ComputeError
    from rewardloop.store import read_decisions

    store = open_store(cfg)
    try:
        batch = read_decisions(store, policy=policy, version=version, reward_spec=(name, int(ver)))
    finally:
        store.close()
    try:
        cand = load_policy_for_eval(candidate, cfg)
        with (
            ComputeBackend(compute_config(cfg, backend, ray_address)) as compute,
            console.status(f"off-policy evaluation of {cand.name} on {len(batch)} decisions ..."),
        ):
            result = evaluate_candidate_on_logs(
                cand,
                batch,
                n_bootstrap_samples=n_bootstrap,
                random_state=seed,
                resample=compute.bootstrap_means,
            )
    except (OPEInputError, PolicyLoadError, ComputeError) as err:
        raise fail(str(err), exit_code_for(err)) from None
    _print_ope(result, cand.name, policy, len(batch))
    if out is not None:
        out.write_text(json.dumps(result.to_dict(), indent=2))
        console.print(f"wrote {out}")


def register(app: typer.Typer) -> None:
    """Add ``eval``, ``gate``, ``ope`` and ``monitor`` to the ``rewardloop`` command."""
    app.command("eval")(eval_cmd)
    app.command("gate")(gate_cmd)
    app.command("ope")(ope_cmd)
    app.command("monitor")(monitor_cmd)
