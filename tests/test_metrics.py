"""Metrics on hand-made examples (checked by hand and against scikit-learn)."""

from __future__ import annotations

import numpy as np
import pytest

from birdsong.metrics import classification_metrics, is_collapsed, roc_auc_ovr


def test_hand_made_example():
    labels = ["a", "b", "c"]
    y = np.array([0, 0, 1, 1, 2, 2])
    scores = np.array(
        [
            [0.8, 0.1, 0.1],  # a -> a
            [0.2, 0.7, 0.1],  # a -> b (a second)
            [0.1, 0.8, 0.1],  # b -> b
            [0.1, 0.6, 0.3],  # b -> b
            [0.5, 0.1, 0.4],  # c -> a (c second)
            [0.1, 0.2, 0.7],  # c -> c
        ]
    )
    m = classification_metrics(y, scores, labels)
    assert m["top1_accuracy"] == pytest.approx(4 / 6)
    assert "top3_accuracy" not in m  # top-3 of 3 classes is always 1: not reported
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    a, b, c = (m["per_species"][k] for k in labels)
    assert (a["precision"], a["recall"]) == (0.5, 0.5)
    assert b["precision"] == pytest.approx(2 / 3) and b["recall"] == 1.0
    assert (c["precision"], c["recall"]) == (1.0, 0.5)
    assert b["f1"] == pytest.approx(0.8)
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert a["support"] == 2


def test_against_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    s = rng.dirichlet(np.ones(4), 200) + np.eye(4)[y] * rng.uniform(0, 0.5, (200, 1))
    s[:5] = s[5]  # ties
    s = s / s.sum(1, keepdims=True)
    m = classification_metrics(y, s, list("abcd"))
    assert m["macro_f1"] == pytest.approx(sk.f1_score(y, s.argmax(1), average="macro"))
    assert m["macro_roc_auc"] == pytest.approx(
        sk.roc_auc_score(y, s, multi_class="ovr", average="macro")
    )
    assert roc_auc_ovr(y, s)[1][0] == pytest.approx(sk.roc_auc_score(y == 0, s[:, 0]))


def test_collapsed_model_is_recognised():
    rng = np.random.default_rng(0)
    same = np.tile([0.2, 0.5, 0.3], (40, 1)) + 1e-5 * rng.standard_normal((40, 3))
    assert is_collapsed(same)
    learnt = rng.dirichlet(np.ones(3), size=40)
    assert not is_collapsed(learnt)
    # one class always wins but the scores move with the input: not collapsed
    moving = np.column_stack(
        [np.linspace(0.5, 0.9, 40), np.linspace(0.3, 0.05, 40), np.linspace(0.2, 0.05, 40)]
    )
    assert not is_collapsed(moving)


def test_chance_levels_and_no_top3_with_three_classes():
    y = np.array([0, 0, 0, 1, 2])
    m = classification_metrics(y, np.eye(3)[y], ["a", "b", "c"])
    assert "top3_accuracy" not in m
    assert m["chance_accuracy"] == pytest.approx(1 / 3)
    assert m["majority_accuracy"] == pytest.approx(3 / 5)
