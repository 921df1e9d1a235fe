"""The closed loop, end to end, on real data: what ``rewardloop demo`` runs.

An intent classifier (Home Assistant intents) starts from a small labelled seed and serves held-out
real texts. Simulated users give thumbs and some corrections (raters of different authority and
reliability); unsure decisions wait in the review queue for a simulated reviewer. Each round:

1. serve the round's traffic with the champion (or, during an experiment, the variant each user's
   hash assigns), sampling from the policy's distribution so every decision carries a propensity;
2. log decisions, queue the unsure ones, collect feedback, resolve the queue;
3. compile rewards;
4. advance a running experiment (ramp, promote or roll back by the statistics), or else train a
   challenger — supervised on the corrections, then an RL learner on the bandit feedback — evaluate it
   on the golden set and by off-policy evaluation on the logged traffic, gate it, and start it as a
   canary experiment when it passes.

One round also injects a deliberately bad challenger (trained on shuffled labels), which must be
stopped. Beside the classifier, a linear Thompson-sampling router with priors learns which of three
agents answers best per request category, and a reward model trained on the VADER human ratings
reranks candidates.

Every step is recorded in the store: decisions, feedback, review items, rewards, training runs,
registered versions, alias history and experiments.
"""

from __future__ import annotations

import dataclasses
import itertools
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewardloop.config.sections import ExperimentsConfig, GateConfig, ReviewConfig
from rewardloop.datasets.intents import IntentData, load_intents
from rewardloop.demo.simulation import DEFAULT_AGENTS, FeedbackSimulator, agent_reward, reviewer_feedback
from rewardloop.encoders import default_encoder
from rewardloop.evaluation.golden import GoldenItem, GoldenSet
from rewardloop.evaluation.metrics import GoldenReport
from rewardloop.learners import LEARNERS
from rewardloop.learners.bandits import LinearThompson
from rewardloop.loop.compile import compile_rewards
from rewardloop.loop.experiments import Experiments
from rewardloop.loop.iteration import LoopRunner
from rewardloop.loop.review import ReviewPolicy
from rewardloop.loop.serving import ServingPath
from rewardloop.policies.classifier import ClassifierPolicy
from rewardloop.policies.contract import DecisionContext, Exploration
from rewardloop.registry import CHAMPION, Registry
from rewardloop.rewards import RewardSpec
from rewardloop.store import Store, read_decisions, write_decisions, write_feedback
from rewardloop.store.insights import DEFAULT_PROJECT
from rewardloop.store.review import read_review_queue, resolve_review_item
from rewardloop.types import Decision, Feedback, utcnow

POLICY = "intent"
ROUTER = "agent_router"
#: Thumbs on [-1, 1] and corrections compiled into a 0/1 correctness reward.
THUMBS = RewardSpec("thumbs", function="accuracy", scale="unit")
#: Intent domains the router's agents specialise in (by the intent's name).
CATEGORIES = {
    "Light": "lights",
    "Climate": "climate",
    "Temperature": "climate",
    "Media": "media",
    "Timer": "timers",
}
#: The reviewer's answers are weighted like any reviewer's: the project's ``review.reviewer_authority``.
REVIEWER_AUTHORITY = ReviewConfig().reviewer_authority
#: Intents a wrong answer to is costly: the gate holds them to a higher bar.
CRITICAL_WORDS = ("Lock", "Unlock", "Cancel", "Stop")


@dataclass
class DemoConfig:
    """How big the demo is. The defaults run in a few minutes on 2 cores; tests shrink them."""

    rounds: int = 6
    traffic_per_round: int = 2000
    seed_per_intent: int = 5
    golden_per_intent: int = 20
    samples_per_template: int = 20
    #: Many users with few requests each, as in production: the A/B sample-ratio check counts decisions,
    #: which is valid only when no user sends a large share of them.
    users: int = 50_000
    review_capacity: int = 120
    #: Decisions less confident than this wait for the reviewer.
    review_below: float = 0.5
    #: Exploration while serving: the best guess with probability 1-ε, a uniform label otherwise.
    #: Every decision so carries a propensity of at least ε/K for off-policy evaluation.
    epsilon: float = 0.1
    bad_challenger_round: int = 2
    #: The bandit learner trained beside plain supervision each round (CRM: the best by
    #: benchmarks/learning.py); the loop keeps whichever the held-out logs and OPE prefer.
    rl_learner: str = "crm"
    vader_snippets: int = 1500
    vader_heldout: int = 500
    seed: int = 0
    out_dir: Path = Path("demo-output")
    intents: list[str] | None = None
    experiments: ExperimentsConfig = field(
        default_factory=lambda: ExperimentsConfig(
            # A short ramp: each demo round is a day of traffic; production keeps 5 → 25 → 50 → 100.
            ramp=[0.5, 1.0],
            min_samples=300,
            # 1,000 outcomes per arm a round: the always-valid interval is about ±0.05 at an 85%
            # success rate, so a challenger as good as the champion is shown non-inferior in a round.
            non_inferiority_margin=0.05,
            reward_spec="thumbs",
            success_at=0.5,
        )
    )
    gate: GateConfig = field(
        default_factory=lambda: GateConfig(
            min_accuracy=0.5,
            max_ece=0.25,
            max_class_drop=0.35,
            min_class_support=5,
            min_ope_lower_vs_champion=-0.05,
        )
    )


@dataclass
class RoundResult:
    round: int
    champion: str
    golden_accuracy: float
    ece: float
    online_reward: float
    served: int
    reviewed: int
    verdict: str


@dataclass
class DemoResult:
    rounds: list[RoundResult]
    seed_golden_acc: float
    final_golden_acc: float
    #: Supervision with every true label of the seed set and the served traffic: the ceiling.
    full_labels_golden_acc: float
    final_report: GoldenReport
    bad_challenger_promoted: bool
    bad_challenger_outcome: str
    experiments: list[dict[str, Any]]
    router: dict[str, Any]
    reranker: dict[str, float]
    history: list[dict[str, Any]]
    seconds: float
    store_url: str
    #: Rounds that ended with the champion they started with.
    rounds_without_promotion: int

    @property
    def gain_captured(self) -> float:
        """(final − seed) / (full labels − seed): the share of the reachable gain the loop delivered."""
        room = self.full_labels_golden_acc - self.seed_golden_acc
        return (self.final_golden_acc - self.seed_golden_acc) / room if room > 0 else float("nan")


Say = Callable[[str], None]


def _golden_set(data: IntentData) -> GoldenSet:
    return GoldenSet(
        [
            GoldenItem(
                id=f"g{i}",
                text=text,
                label=intent,
                critical=any(w in intent for w in CRITICAL_WORDS),
                category=_category(intent),
            )
            for i, (text, intent) in enumerate(data.golden)
        ]
    )


def _category(intent: str) -> str:
    for word, category in CATEGORIES.items():
        if word in intent:
            return category
    return "other"


class ClosedLoop:
    """The demo around a :class:`LoopRunner`: data, simulated serving, users and reviewer."""

    def __init__(self, cfg: DemoConfig, say: Say) -> None:
        self.cfg = cfg
        self.say = say
        cfg.out_dir.mkdir(parents=True, exist_ok=True)
        db = cfg.out_dir / "rewardloop.db"
        for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            stale.unlink(missing_ok=True)
        shutil.rmtree(cfg.out_dir / "registry", ignore_errors=True)
        shutil.rmtree(cfg.out_dir / "artifacts", ignore_errors=True)
        self.store_url = f"sqlite:///{db.resolve()}"
        self.store = Store.open(self.store_url)
        self.registry = Registry(self.store, cfg.out_dir / "registry")
        self.experiments = Experiments(self.store, self.registry, cfg.experiments)
        self.rng = np.random.default_rng(cfg.seed)
        self.users = FeedbackSimulator(seed=cfg.seed)
        # The reviewer answers review_capacity items a round (a day): the queue's budget.
        self.review = ReviewPolicy(confidence_below=cfg.review_below, budget_per_day=cfg.review_capacity)
        self.history: list[dict[str, Any]] = []
        self.bad_version: str | None = None
        self.bad_outcome = "not injected"

    def setup(self) -> GoldenReport:
        """Load the data, embed it once, train the seed model and make it the first champion."""
        cfg = self.cfg
        self.say("loading the Home Assistant intents (expanded with hassil, cached) ...")
        self.data = load_intents(
            seed=cfg.seed,
            seed_per_intent=cfg.seed_per_intent,
            golden_per_intent=cfg.golden_per_intent,
            samples_per_template=cfg.samples_per_template,
            intents=cfg.intents,
        )
        golden = _golden_set(self.data)
        order = self.rng.permutation(len(self.data.traffic))
        self.traffic = [(self.data.traffic.texts[i], self.data.traffic.intents[i]) for i in order]
        needed = cfg.rounds * cfg.traffic_per_round
        if needed > len(self.traffic):
            raise ValueError(
                f"rounds × traffic = {needed} requests, but only {len(self.traffic)} texts are held out"
            )
        self.say(
            f"{len(self.data.labels)} intents; seed set {len(self.data.seed_set)} texts, golden set "
            f"{len(golden.items)}, traffic {needed} of {len(self.traffic)} held-out texts"
        )
        encoder = default_encoder()
        texts = list(
            dict.fromkeys(self.data.seed_set.texts + golden.texts + [t for t, _ in self.traffic[:needed]])
        )
        self.say(f"embedding {len(texts)} texts once with MiniLM ...")
        encoder.encode(texts)
        self.runner = LoopRunner(
            store=self.store,
            registry=self.registry,
            experiments=self.experiments,
            policy=POLICY,
            golden=golden,
            spec=THUMBS,
            gate=cfg.gate,
            artifacts=cfg.out_dir / "artifacts",
            labels=self.data.labels,
            rl_learner=cfg.rl_learner if cfg.rl_learner in LEARNERS else None,
            base_texts=self.data.seed_set.texts,
            base_labels=self.data.seed_set.intents,
            seed=cfg.seed,
            encoder=encoder,
            actor="demo",
            candidates=True,
        )
        first = self.runner.iterate()  # no champion yet: trains on the seed set and activates it
        self.seed_version = str(first.challenger)
        self.seed_report = self.runner.evaluate(self.runner.load(str(first.challenger)), "seed")
        return self.seed_report

    def serve(self, round_no: int) -> tuple[list[Decision], dict[str, str], list[Decision | None]]:
        """Decide on the round's traffic through the serving path: each user's variant by hash,
        ε-greedy, propensities logged. Returns the served decisions, the true intent of each, and each
        one's shadow challenger decision (None outside a shadow experiment)."""
        cfg = self.cfg
        batch = self.traffic[(round_no - 1) * cfg.traffic_per_round : round_no * cfg.traffic_per_round]
        exp = self.experiments.running_for(POLICY)
        champion = str(self.runner.champion_version())
        # counterfactual: each request of a canary is flagged with whether the other variant would
        # have served it otherwise, so that the verdict compares the arms where they differ.
        path = ServingPath(
            POLICY,
            self.experiments,
            running=lambda: exp,
            champion=lambda: champion,
            load=self._served,
            counterfactual=True,
        )
        users = [f"user-{int(u)}" for u in self.rng.integers(cfg.users, size=len(batch))]
        served = [
            path.serve(
                DecisionContext(
                    text=text, metadata={"user_id": user, "category": _category(intent), "round": round_no}
                ),
                user,
                self.rng,
            )
            for (text, intent), user in zip(batch, users, strict=True)
        ]
        truth = {s.decision.id: batch[i][1] for i, s in enumerate(served)}
        return [s.decision for s in served], truth, [s.shadow for s in served]

    def _served(self, version: str) -> ClassifierPolicy:
        """The registered ``version``, served ε-greedy with the demo's ε."""
        policy = self.runner.load(version)
        policy.exploration = Exploration("epsilon", self.cfg.epsilon)
        return policy

    def collect(
        self,
        decisions: list[Decision],
        truth: dict[str, str],
        shadows: list[Decision | None],
        round_start: datetime,
    ) -> int:
        """Log, take the users' feedback, queue what helps most, and let the reviewer work the queue."""
        write_decisions(self.store, [*decisions, *(s for s in shadows if s is not None)])
        write_feedback(self.store, self.users.feedback(decisions, truth))
        self.review.enqueue(
            self.store,
            [(d, s.action if s is not None else None) for d, s in zip(decisions, shadows, strict=True)],
            round_start=round_start,
        )
        by_id = {d.id: d for d in decisions}
        queue = read_review_queue(
            self.store, DEFAULT_PROJECT, statuses=("open",), limit=self.cfg.review_capacity
        )
        for entry in queue:
            d = by_id.get(entry.item.decision_id)
            if d is None:
                continue
            fb = reviewer_feedback(d, truth[d.id])
            resolve_review_item(
                self.store,
                entry.item.id,
                DEFAULT_PROJECT,
                label=fb.label or "",
                reviewer=fb.rater_id or "reviewer",
                authority=REVIEWER_AUTHORITY,
            )
        return len(queue)

    def online_reward(self, decisions: list[Decision]) -> float:
        batch = read_decisions(self.store, ids=[d.id for d in decisions], reward_spec=THUMBS.key)
        rewards = batch.reward_array()
        return float(np.nanmean(rewards)) if np.isfinite(rewards).any() else float("nan")

    def step_round(self, round_no: int) -> RoundResult:
        started = utcnow()
        decisions, truth, shadows = self.serve(round_no)
        reviewed = self.collect(decisions, truth, shadows, started)
        verdicts: list[str] = []
        if round_no == self.cfg.bad_challenger_round:
            compile_rewards(self.store, THUMBS, policy=POLICY, incremental=True)
            verdicts.append(self._try_bad_challenger(started))
        if round_no < self.cfg.rounds or self.experiments.running_for(POLICY) is not None:
            result = self.runner.iterate(ope_since=started)
            verdicts.append(
                result.summary
                if result.challenger is None
                else f"{result.action} {result.challenger}"
                if result.action not in ("gated", "canary")
                else result.summary
            )
            self.history.append(
                {
                    "round": round_no,
                    "action": result.action,
                    "summary": result.summary,
                    "gate": result.gate.to_dict() if result.gate else None,
                }
            )
        else:
            compile_rewards(self.store, THUMBS, policy=POLICY, incremental=True)
        online = self.online_reward(decisions)
        champion = str(self.runner.champion_version())
        report = self.runner.evaluate(self.runner.load(champion), f"champion {champion}")
        return RoundResult(
            round_no,
            champion,
            report.accuracy,
            report.ece,
            online,
            len(decisions),
            reviewed,
            "; ".join(verdicts),
        )

    def full_labels_accuracy(self) -> float:
        """Golden accuracy of supervision with the true label of every text the loop saw (the seed
        set and the served traffic), trained the way the loop trains: the ceiling of its gain."""
        served = self.traffic[: self.cfg.rounds * self.cfg.traffic_per_round]
        texts = list(self.data.seed_set.texts) + [t for t, _ in served]
        labels = list(self.data.seed_set.intents) + [y for _, y in served]
        return self.runner.evaluate(self.runner.fit_supervised(texts, labels), "full labels").accuracy

    def _try_bad_challenger(self, since: datetime) -> str:
        """A broken training pipeline (labels shuffled) produces a challenger: the gate must stop it."""
        rng = np.random.default_rng(self.cfg.seed + 99)
        logged = read_decisions(self.store, policy=POLICY, include_feedback=True)
        good = self.runner.labelled_data(logged)
        shuffled = replace(good, labels=[str(x) for x in rng.permutation(good.labels)])
        policy, version, _ = self.runner.train_challenger(labelled=shuffled, rl=False, note="shuffled labels")
        self.bad_version = version
        report = self.runner.gate_report(policy, self.runner.champion_logs(since))
        self.history.append(
            {
                "round": self.cfg.bad_challenger_round,
                "version": version,
                "bad": True,
                "gate": report.to_dict(),
            }
        )
        if report.passed:
            # The canary's guardrails are the second line of defence.
            self.runner.start_canary(version, report)
            self.bad_outcome = f"bad challenger {version} passed the gate; the canary must roll it back"
        else:
            failed = ", ".join(
                f"{c.name} {c.figure:.2f}" if c.figure is not None else c.name for c in report.failed
            )
            self.bad_outcome = f"bad challenger {version} stopped at the gate ({failed})"
        return self.bad_outcome


# ------------------------------------------------------------------------------------------ router


def run_router(cfg: DemoConfig, store: Store, data: IntentData, rounds: int) -> dict[str, Any]:
    """A linear Thompson-sampling router with priors learns the best agent per category; logs it all."""
    rng = np.random.default_rng(cfg.seed + 1)
    categories = sorted({_category(i) for i in data.labels})
    agents = {a.name: a for a in DEFAULT_AGENTS}
    # Priors: the team believes the agentic agent is the strong general one (mean 0.6, 5 pseudo-obs).
    # Thompson sampling explores by itself and logs a (Monte-Carlo) propensity for every decision, so
    # its logs are reusable for off-policy evaluation; LinUCB's arg-max would log propensity 1.
    router = LinearThompson(
        list(agents), dim=len(categories), priors={"agentic_rag": (0.6, 5.0)}, random_state=cfg.seed
    )
    per_round = []
    oracle, uniform = [], []
    texts = list(zip(data.traffic.texts, data.traffic.intents, strict=True))
    n = min(len(texts), cfg.traffic_per_round)
    for r in range(rounds):
        rewards, decisions, feedback = [], [], []
        for j in rng.integers(len(texts), size=n):
            text, intent = texts[int(j)]
            category = _category(intent)
            x = np.array([c == category for c in categories], dtype=float)
            context = DecisionContext(
                text=text, features=tuple(x), metadata={"category": category, "round": r + 1}
            )
            dec = dataclasses.replace(router.decide(context, rng), policy=ROUTER, policy_version="thompson-1")
            reward = agent_reward(agents[dec.action], category, rng)
            quality = [a.success_probability(category) for a in agents.values()]
            oracle.append(max(quality))
            uniform.append(float(np.mean(quality)))
            router.learn(x, dec.action, reward, category=category)
            rewards.append(reward)
            decisions.append(dec)
            feedback.append(Feedback(decision_id=dec.id, kind="implicit", value=reward, source="implicit"))
        write_decisions(store, decisions)
        write_feedback(store, feedback)
        per_round.append(float(np.mean(rewards)))
    router.save(cfg.out_dir / "artifacts" / ROUTER)
    board = [
        {
            "arm": row.arm,
            "pulls": int(row.pulls),
            "mean_reward": float(row.mean),
            "low": float(row.low),
            "high": float(row.high),
        }
        for row in router.leaderboard()
    ]
    return {
        "leaderboard": board,
        "first_round": per_round[0],
        "last_round": per_round[-1],
        "mean_reward": float(np.mean(per_round)),
        "oracle": float(np.mean(oracle)),
        "uniform": float(np.mean(uniform)),
    }


# ---------------------------------------------------------------------------------------- reranker


def run_reranker(cfg: DemoConfig) -> dict[str, float]:
    """Train the embeddings + LR reward model on VADER human ratings; rerank held-out candidates."""
    from rewardloop.datasets.vader import load_vader
    from rewardloop.policies.reranker import Reranker
    from rewardloop.rewards.embedding_model import EmbeddingRewardModel

    snippets = load_vader(seed=cfg.seed)  # a seeded shuffle of all four corpora
    train = snippets[: cfg.vader_snippets]
    held = snippets[cfg.vader_snippets : cfg.vader_snippets + cfg.vader_heldout]
    model = EmbeddingRewardModel(threshold=0.0, random_state=cfg.seed).fit(
        [s.prompt for s in train], [s.text for s in train], [s.mean for s in train]
    )
    path = model.save(cfg.out_dir / "artifacts" / "vader-reward-model")
    reranker = Reranker.load(path)
    # Candidate lists of 5 held-out snippets of one source: does the top-ranked one have the best rating?
    hits, lists = 0, 0
    by_source: dict[str, list[Any]] = {}
    for s in held:
        by_source.setdefault(s.source, []).append(s)
    for group in by_source.values():
        for start in range(0, len(group) - 4, 5):
            cands = group[start : start + 5]
            top = reranker.top_k(cands[0].prompt, [c.text for c in cands], k=1)[0]
            hits += int(cands[top.index].mean == max(c.mean for c in cands))
            lists += 1
    return {
        "rm_auc": float(model.metrics_["roc_auc"]),
        "rm_accuracy": float(model.metrics_["accuracy"]),
        "rerank_top1": hits / lists if lists else float("nan"),
        "rerank_random_top1": 0.2,
        "rerank_lists": float(lists),
    }


# -------------------------------------------------------------------------------------------- run


def run_demo(
    cfg: DemoConfig,
    say: Say = lambda _: None,
    on_round: Callable[[RoundResult], None] = lambda _: None,
) -> DemoResult:
    """Run the whole demo and return its results (the CLI prints them and writes the report)."""
    started = time.perf_counter()
    loop = ClosedLoop(cfg, say)
    seed_report = loop.setup()
    threads = torch.get_num_threads()
    # Every text is embedded now; what follows trains and scores small heads, whose steps are a few
    # kernel calls: on one thread a step of the full-label fit took 2.6 ms, on two threads of a busy
    # 2-core machine 45 ms (measured), so the demo's training runs on one.
    torch.set_num_threads(1)
    try:
        return _run_rounds(cfg, loop, seed_report, started, say, on_round)
    finally:
        torch.set_num_threads(threads)


def _run_rounds(
    cfg: DemoConfig,
    loop: ClosedLoop,
    seed_report: GoldenReport,
    started: float,
    say: Say,
    on_round: Callable[[RoundResult], None],
) -> DemoResult:
    """The rounds after :meth:`ClosedLoop.setup`, the ceiling, the router and the reranker."""
    say(f"seed model 1.0.0: golden accuracy {seed_report.accuracy:.3f}, ECE {seed_report.ece:.3f}")
    rounds = []
    for r in range(1, cfg.rounds + 1):
        result = loop.step_round(r)
        rounds.append(result)
        on_round(result)
    champion = str(loop.runner.champion_version())
    final = loop.runner.evaluate(loop.runner.load(champion), f"champion {champion}")
    say("the ceiling: supervision with every true label of the same texts ...")
    full_labels = loop.full_labels_accuracy()
    say("router: linear Thompson sampling with priors over three agents ...")
    router = run_router(cfg, loop.store, loop.data, cfg.rounds)
    say("reranker: reward model on the VADER human ratings ...")
    reranker = run_reranker(cfg)
    champions = {e.to_version for e in loop.registry.history(POLICY, CHAMPION)}
    experiments = [
        {
            "name": e.name,
            "challenger": e.variants.get("challenger"),
            "status": e.status,
            "final_share": e.shares.get("challenger"),
            "stage": e.stage,
        }
        for e in loop.experiments.list(POLICY)
    ]
    return DemoResult(
        rounds=rounds,
        seed_golden_acc=seed_report.accuracy,
        final_golden_acc=final.accuracy,
        full_labels_golden_acc=full_labels,
        final_report=final,
        bad_challenger_promoted=loop.bad_version in champions,
        bad_challenger_outcome=loop.bad_outcome,
        experiments=experiments,
        router=router,
        reranker=reranker,
        history=loop.history,
        seconds=time.perf_counter() - started,
        store_url=loop.store_url,
        rounds_without_promotion=sum(
            a == b for a, b in itertools.pairwise([loop.seed_version] + [r.champion for r in rounds])
        ),
    )
