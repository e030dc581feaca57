"""Per-species thresholds: the F1 and target-precision rules on a hand-made example."""

from __future__ import annotations

import json

import numpy as np
import pytest

from birdsong.errors import InvalidParameterError
from birdsong.thresholds import apply_thresholds, choose_thresholds

# Scores of four species over eight validation windows, and the truth.
RANKED = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1])
SCORES = np.stack([RANKED, RANKED, RANKED[::-1], RANKED], axis=1)
TARGETS = np.stack(
    [
        [1, 1, 0, 1, 0, 1, 0, 0],  # tit: F1 peaks at 0.3, precision >= 0.7 lowest at 0.6
        [0, 1, 0, 0, 0, 0, 0, 0],  # gull: one positive under a negative, precision <= 0.5
        [0, 0, 0, 0, 0, 0, 0, 0],  # wren: never heard in validation
        [1, 1, 1, 1, 0, 0, 0, 0],  # finch: separable
    ],
    axis=1,
)
LABELS = ["tit", "gull", "wren", "finch"]


def test_f1_rule_on_a_hand_made_example():
    # tit, from the top: (P, R) = (1, .25) (1, .5) (.67, .5) (.75, .75) (.6, .75)
    # (.67, 1) (.57, 1) (.5, 1); F1 is highest (0.8) at 0.3
    chosen = choose_thresholds(SCORES, TARGETS, LABELS, rule="f1")
    assert chosen.thresholds[0] == 0.3
    assert (chosen.precision[0], chosen.recall[0], chosen.f1[0]) == pytest.approx((2 / 3, 1, 0.8))
    assert chosen.thresholds[1] == 0.8 and chosen.f1[1] == pytest.approx(2 / 3)
    assert chosen.thresholds[3] == 0.6 and chosen.f1[3] == 1.0
    assert chosen.thresholds[2] == 0.5 and np.isnan(chosen.precision[2])  # default
    assert "no positive" in chosen.notes["wren"] and set(chosen.notes) == {"wren"}
    assert chosen.positives.tolist() == [4, 1, 0, 4]


def test_precision_rule_takes_the_most_recall_that_reaches_the_target():
    strict = choose_thresholds(SCORES, TARGETS, LABELS, rule="precision", target_precision=0.9)
    assert strict.thresholds[0] == 0.8
    assert (strict.precision[0], strict.recall[0]) == (1.0, 0.5)
    # precision dips below 0.7 at 0.7 and recovers (0.75) at 0.6: the lower one is taken
    loose = choose_thresholds(SCORES, TARGETS, LABELS, rule="precision", target_precision=0.7)
    assert loose.thresholds[0] == 0.6
    assert (loose.precision[0], loose.recall[0]) == (0.75, 0.75)
    # gull never reaches 0.9: the best precision (0.5 at 0.8) is used, and said so
    assert strict.thresholds[1] == 0.8 and strict.precision[1] == 0.5
    assert "not reached" in strict.notes["gull"]
    assert strict.thresholds[3] == 0.6 and strict.recall[3] == 1.0
    report = strict.to_dict()
    json.dumps(report, allow_nan=False)
    assert report["rule"] == "precision" and report["target_precision"] == 0.9
    assert report["per_species"]["wren"]["precision"] is None
    assert report["per_species"]["gull"]["note"].startswith("precision 0.9 not reached")


def test_floor_raises_low_thresholds_and_reports_what_the_floor_gives():
    """Sigmoid outputs get a floor of 0.5: the tit's best-F1 threshold (0.3) is raised,
    and its precision and recall are those of the windows scoring >= 0.5."""
    floored = choose_thresholds(SCORES, TARGETS, LABELS, rule="f1", floor=0.5)
    assert floored.thresholds.tolist() == [0.5, 0.8, 0.5, 0.6]
    # >= 0.5: windows 0.9 0.8 0.7 0.6 hold 3 of the tit's 4 positives
    assert (floored.precision[0], floored.recall[0], floored.f1[0]) == pytest.approx(
        (0.75, 0.75, 0.75)
    )
    assert "0.3 raised to the floor 0.5" in floored.notes["tit"]
    assert set(floored.notes) == {"tit", "wren"}  # the others were above it already
    assert floored.to_dict()["floor"] == 0.5
    assert choose_thresholds(SCORES, TARGETS, LABELS).to_dict()["floor"] is None
    # the precision rule's own note stays: gull never reaches 0.9 (best 0.5 at 0.8)
    strict = choose_thresholds(
        SCORES, TARGETS, LABELS, rule="precision", target_precision=0.9, floor=0.85
    )
    assert strict.notes["gull"].startswith("precision 0.9 not reached")
    assert strict.notes["gull"].endswith("chosen threshold 0.8 raised to the floor 0.85")
    high = choose_thresholds(SCORES, TARGETS, LABELS, floor=0.75)
    assert high.thresholds.tolist() == [0.75, 0.8, 0.75, 0.75]  # the default too
    with pytest.raises(InvalidParameterError, match="floor"):
        choose_thresholds(SCORES, TARGETS, LABELS, floor=float("nan"))


@pytest.mark.parametrize("seed", [0, 1])
def test_reported_numbers_are_what_the_thresholds_give_and_f1_is_best(seed):
    rng = np.random.default_rng(seed)
    targets = rng.random((200, 4)) < 0.3
    scores = np.round(targets * 0.3 + rng.random((200, 4)), 2)
    chosen = choose_thresholds(scores, targets, list("abcd"), rule="f1")
    predicted = apply_thresholds(scores, chosen)
    tp = (predicted & targets).sum(axis=0)
    np.testing.assert_allclose(chosen.precision, tp / predicted.sum(axis=0))
    np.testing.assert_allclose(chosen.recall, tp / targets.sum(axis=0))
    for k in range(4):  # no other threshold does better on F1
        for t in np.unique(scores[:, k]):
            p = scores[:, k] >= t
            f1 = 2 * (p & targets[:, k]).sum() / (p.sum() + targets[:, k].sum())
            assert f1 <= chosen.f1[k] + 1e-12


def test_apply_thresholds_by_mapping_and_errors():
    scores = np.array([[0.2, 0.9], [0.7, 0.1]])
    got = apply_thresholds(scores, {"b": 0.5, "a": 0.7}, labels=["a", "b"])
    assert got.tolist() == [[False, True], [True, False]]
    with pytest.raises(InvalidParameterError, match="'thresholds'"):
        apply_thresholds(scores, {"a": 0.5}, labels=["a", "b"])
    with pytest.raises(InvalidParameterError, match="'thresholds'"):
        apply_thresholds(scores, [0.5])
    with pytest.raises(InvalidParameterError, match="'rule'"):
        choose_thresholds(SCORES, TARGETS, LABELS, rule="recall")
    with pytest.raises(InvalidParameterError, match="'target_precision'"):
        choose_thresholds(SCORES, TARGETS, LABELS, rule="precision", target_precision=1.5)
    with pytest.raises(InvalidParameterError, match="'labels'"):
        choose_thresholds(SCORES, TARGETS, LABELS[:2])
