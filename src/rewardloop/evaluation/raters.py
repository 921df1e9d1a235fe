"""How far each rater can be trusted: agreement with the truth where it is known, and with each other.

- :func:`cohen_kappa` — Cohen's κ of two raters on the same items, ``κ = (p_o − p_e) / (1 − p_e)`` with
  ``p_e`` the agreement expected from each rater's label mix (Cohen 1960).
- :func:`krippendorff_alpha` — Krippendorff's α for nominal labels over every rater at once, any number
  of raters per item, items with one label ignored: ``α = 1 − D_o / D_e`` from the coincidence matrix
  (Krippendorff 2011, *Computing Krippendorff's Alpha-Reliability*, section C).
- :func:`rate_raters` — per rater: accuracy and κ against the golden set, agreement with the other
  raters' majority on the audit sample (the hashed, confidence-blind draw of ``review.audit_rate``:
  items nobody chose), mean pairwise κ with the other raters, and a suggested authority, ranked most
  reliable first. :func:`rate_stored_raters` reads it all from the store.

The suggested authority is the rater's chance-corrected agreement with the truth (κ against the
golden set; against the other raters' majority when the golden set covers fewer than ``min_items`` of
the rater's items), clipped to [0, 1] and rounded to 0.05. A rater at chance gets 0. A person applies
it (``POST /v1/raters/{rater}/authority``); nothing changes by itself.

>>> cohen_kappa(["a", "a", "b", "b"], ["a", "b", "b", "b"])
0.5
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

from rewardloop.store.raters import RaterLabels


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Cohen's κ of two aligned label lists (1.0 when both use one and the same label throughout)."""
    if len(a) != len(b):
        raise ValueError(f"cohen_kappa: the two raters have {len(a)} and {len(b)} labels")
    if not a:
        raise ValueError("cohen_kappa: no items rated by both")
    n = len(a)
    p_o = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    p_e = sum(ca[k] * cb[k] for k in ca) / (n * n)
    if p_e >= 1.0:
        return 1.0 if p_o >= 1.0 else 0.0
    return (p_o - p_e) / (1 - p_e)


def krippendorff_alpha(units: Mapping[Hashable, Sequence[Hashable]]) -> float | None:
    """Nominal α over ``units``: item → the labels its raters gave. None without a pairable item."""
    o: defaultdict[tuple[Hashable, Hashable], float] = defaultdict(float)  # coincidences o_ck
    for labels in units.values():
        m = len(labels)
        if m < 2:
            continue
        for i, c in enumerate(labels):
            for j, k in enumerate(labels):
                if i != j:
                    o[(c, k)] += 1 / (m - 1)
    n_c: defaultdict[Hashable, float] = defaultdict(float)
    for (c, _k), v in o.items():
        n_c[c] += v
    n = sum(n_c.values())
    if n <= 1:
        return None
    d_o = sum(v for (c, k), v in o.items() if c != k) / n
    d_e = sum(n_c[c] * n_c[k] for c in n_c for k in n_c if c != k) / (n * (n - 1))
    if d_e == 0:
        return 1.0
    return 1 - d_o / d_e


@dataclass(frozen=True)
class RaterReport:
    """One rater's agreement figures; a figure is None when fewer than ``min_items`` items back it."""

    rater: str
    n_items: int
    golden_n: int
    golden_accuracy: float | None
    audit_n: int
    audit_accuracy: float | None
    truth_kappa: float | None
    peer_n: int
    peer_kappa: float | None
    suggested_authority: float
    basis: str


def _vs(
    ratings: Mapping[str, Hashable], truth: Mapping[str, Hashable]
) -> tuple[list[Hashable], list[Hashable]]:
    items = sorted(i for i in ratings if i in truth)
    return [ratings[i] for i in items], [truth[i] for i in items]


def _accuracy(a: list[Hashable], b: list[Hashable], min_items: int) -> float | None:
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a) if len(a) >= min_items else None


def _majority(by_rater: Mapping[str, Mapping[str, Hashable]], rater: str) -> dict[str, Hashable]:
    """Per item the rater labelled: the other raters' most common label (ties: smallest by repr)."""
    out: dict[str, Hashable] = {}
    for item in by_rater[rater]:
        votes = Counter(r[item] for name, r in by_rater.items() if name != rater and item in r)
        if votes:
            top = max(votes.values())
            out[item] = min((k for k, v in votes.items() if v == top), key=repr)
    return out


def _authority(kappa: float | None) -> float:
    if kappa is None:
        return 1.0
    return round(min(1.0, max(0.0, kappa)) * 20) / 20


def rate_raters(
    labels: Sequence[tuple[str, str, Hashable]],
    *,
    golden: Mapping[str, Hashable] | None = None,
    audit: Collection[str] | None = None,
    min_items: int = 10,
) -> list[RaterReport]:
    """Per rater figures from ``labels`` — (rater, item, label) rows, the latest row per pair wins —
    against ``golden`` (item → true label) and the other raters on the ``audit`` items. Most reliable
    first (by suggested authority, then golden κ, then peer κ); a rater without enough evidence keeps
    authority 1.0 (basis "none")."""
    by_rater: dict[str, dict[str, Hashable]] = defaultdict(dict)
    for rater, item, label in labels:
        by_rater[rater][item] = label
    golden, drawn = golden or {}, set(audit or ())
    out = []
    for rater in sorted(by_rater):
        mine = by_rater[rater]
        majority = _majority(by_rater, rater)
        ga, gb = _vs(mine, golden)
        aa, ab = _vs(mine, {i: v for i, v in majority.items() if i in drawn})
        ta, tb = ga, gb
        pa, pb = _vs(mine, majority)
        pair_k = [
            cohen_kappa(*_vs(mine, by_rater[other]))
            for other in sorted(by_rater)
            if other != rater and len(_vs(mine, by_rater[other])[0]) >= min_items
        ]
        truth_k = cohen_kappa(ta, tb) if len(ta) >= min_items else None
        peer_k = sum(pair_k) / len(pair_k) if pair_k else None
        majority_k = cohen_kappa(pa, pb) if len(pa) >= min_items else None
        basis = "truth" if truth_k is not None else ("peers" if majority_k is not None else "none")
        out.append(
            RaterReport(
                rater,
                len(mine),
                len(ga),
                _accuracy(ga, gb, min_items),
                len(aa),
                _accuracy(aa, ab, min_items),
                truth_k,
                len(pa),
                peer_k,
                _authority(truth_k if truth_k is not None else majority_k),
                basis,
            )
        )

    def key(r: RaterReport) -> tuple[float, float, float]:
        return (-r.suggested_authority, -(r.truth_kappa or 0.0), -(r.peer_kappa or 0.0))

    return sorted(out, key=key)


def overall_alpha(labels: Sequence[tuple[str, str, Hashable]]) -> float | None:
    """Krippendorff's α over every rater's latest label per item."""
    latest: dict[tuple[str, str], Hashable] = {}
    for rater, item, label in labels:
        latest[(rater, item)] = label
    units: dict[Hashable, list[Hashable]] = defaultdict(list)
    for (_rater, item), label in latest.items():
        units[item].append(label)
    return krippendorff_alpha(units)


def pairwise_kappa(
    labels: Sequence[tuple[str, str, Hashable]], min_items: int = 1
) -> dict[tuple[str, str], float]:
    """Cohen's κ for every pair of raters with at least ``min_items`` items in common."""
    by_rater: dict[str, dict[str, Hashable]] = defaultdict(dict)
    for rater, item, label in labels:
        by_rater[rater][item] = label
    out = {}
    for a, b in combinations(sorted(by_rater), 2):
        xa, xb = _vs(by_rater[a], by_rater[b])
        if len(xa) >= min_items:
            out[(a, b)] = cohen_kappa(xa, xb)
    return out


@dataclass(frozen=True)
class OverlapAgreement:
    """How far two reviewers agree on the items both answered.

    ``kappa`` is Cohen's κ of the first answer against the second (each item's two answers in the order
    given; reviewers vary by item, so the two "raters" are the first and second answer), ``alpha``
    Krippendorff's nominal α over every item with two answers or more; both None without such an
    item. ``agreed`` counts the items whose first two answers are equal.
    """

    items: int
    agreed: int
    kappa: float | None
    alpha: float | None


def overlap_agreement(answers: Sequence[tuple[str, str, Hashable]]) -> OverlapAgreement:
    """:class:`OverlapAgreement` of (reviewer, item, answer) rows, oldest first; a reviewer's later
    answer to an item replaces the earlier one.

    >>> rows = [("ann", "i1", "a"), ("bob", "i1", "a"), ("ann", "i2", "a"), ("bob", "i2", "b"),
    ...         ("ann", "i3", "b"), ("bob", "i3", "b"), ("ann", "i4", "b")]
    >>> o = overlap_agreement(rows)
    >>> (o.items, o.agreed, round(o.kappa, 4), round(o.alpha, 4))
    (3, 2, 0.4, 0.4444)
    """
    by_item: dict[str, dict[str, Hashable]] = defaultdict(dict)
    for reviewer, item, answer in answers:
        by_item[item][reviewer] = answer
    pairs = [list(v.values())[:2] for v in by_item.values() if len(v) >= 2]
    if not pairs:
        return OverlapAgreement(0, 0, None, None)
    first, second = [p[0] for p in pairs], [p[1] for p in pairs]
    units: dict[Hashable, Sequence[Hashable]] = {
        i: list(v.values()) for i, v in by_item.items() if len(v) >= 2
    }
    agreed = sum(a == b for a, b in zip(first, second, strict=True))
    return OverlapAgreement(len(pairs), agreed, cohen_kappa(first, second), krippendorff_alpha(units))


def rate_stored_raters(
    data: RaterLabels,
    *,
    golden_texts: Mapping[str, str] | None = None,
    in_audit: Callable[[str], bool] | None = None,
    min_items: int = 10,
) -> list[RaterReport]:
    """:func:`rate_raters` on labels read with :func:`~rewardloop.store.raters.read_rater_labels`.

    The golden truth of a decision is its ``source="golden"`` feedback, else the label of its text in
    ``golden_texts`` (a golden set file, text → label); ``in_audit`` says whether a decision id is in
    the audit sample.
    """
    golden: dict[str, Hashable] = {}
    for decision_id, text in data.texts.items():
        if golden_texts is not None and text in golden_texts:
            golden[decision_id] = golden_texts[text]
    golden.update(data.golden)
    rows = [(x.rater, x.decision_id, x.label) for x in data.labels]
    audit = {x.decision_id for x in data.labels if in_audit is not None and in_audit(x.decision_id)}
    return rate_raters(rows, golden=golden, audit=audit, min_items=min_items)


__all__ = [
    "OverlapAgreement",
    "RaterReport",
    "cohen_kappa",
    "krippendorff_alpha",
    "overall_alpha",
    "overlap_agreement",
    "pairwise_kappa",
    "rate_raters",
    "rate_stored_raters",
]
