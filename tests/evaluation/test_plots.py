"""Figures are real PNGs and the HTML report embeds them with the figures and the misclassified items."""

from __future__ import annotations

import base64
import re

import numpy as np

from rewardloop.evaluation.golden import GoldenItem, GoldenSet
from rewardloop.evaluation.metrics import evaluate_predictions
from rewardloop.evaluation.plots import confusion_heatmap, html_report, per_class_bars, reliability_diagram

PNG = b"\x89PNG\r\n\x1a\n"


def _report():
    g = GoldenSet(
        [
            GoldenItem("1", "card <stolen>", "fraud", critical=True, tags=("money",)),
            GoldenItem("2", "bill", "billing"),
            GoldenItem("3", "hi", "other", priority="low"),
        ]
    )
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.1, 0.6, 0.3]])
    return evaluate_predictions(g, ["fraud", "billing", "other"], proba, [5.0, 6.0, 7.0], policy="v<1>")


def test_pngs_are_written(tmp_path):
    r = _report()
    for fn in (reliability_diagram, confusion_heatmap, per_class_bars):
        data = fn(r, tmp_path / f"{fn.__name__}.png")
        assert data.startswith(PNG) and len(data) > 2000
        assert (tmp_path / f"{fn.__name__}.png").read_bytes() == data


def test_html_report_embeds_figures_and_escapes_text(tmp_path):
    path = html_report(_report(), tmp_path / "out", name="golden")
    page = path.read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 3 and all(base64.b64decode(i).startswith(PNG) for i in images)
    assert "v&lt;1&gt;" in page and "<1>" not in page  # policy name escaped
    assert "66.7%" in page  # accuracy 2/3
    assert "Misclassified (1)" in page and "other" in page
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "golden.html",
        "golden_confusion.png",
        "golden_per_class.png",
        "golden_reliability.png",
    ]


def test_a_large_confusion_matrix_gets_small_cells():
    """Above 30 labels no counts are written in the cells, so they shrink to fit the tick labels:
    42 labels drew a 2,300-pixel-square figure (1 s of CPU); now it is under 1,500 pixels."""
    import io

    from PIL import Image

    labels = [f"intent_{i}" for i in range(42)]
    g = GoldenSet([GoldenItem(str(i), f"t{i}", lab) for i, lab in enumerate(labels)])
    report = evaluate_predictions(g, labels, np.eye(42), policy="p")
    width, height = Image.open(io.BytesIO(confusion_heatmap(report))).size
    assert 1000 < width < 1500 and 1000 < height < 1500
