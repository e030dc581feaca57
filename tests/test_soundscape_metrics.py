"""Soundscape metrics: window AP/cmAP/ROC-AUC against scikit-learn, event matching by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from birdsong.annotations import Annotation
from birdsong.errors import InvalidParameterError
from birdsong.inference import Detection
from birdsong.soundscape_metrics import (
    average_precision,
    class_mean_average_precision,
    event_metrics,
    macro_roc_auc,
    match_events,
    precision_recall_curve,
    precision_recall_curves,
    roc_auc,
    soundscape_metrics,
)


def random_windows(seed: int, n: int = 300, k: int = 6):
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, k)) < rng.uniform(0.02, 0.4, k)).astype(np.float32)
    targets[:, -1] = 0  # a species never heard in these windows
    scores = 0.6 * targets + rng.random((n, k))
    scores[:, 1] = np.round(scores[:, 1], 1)  # many ties
    return targets, scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ap_cmap_and_auc_equal_sklearn_on_random_data(seed):
    targets, scores = random_windows(seed)
    cmap, per = class_mean_average_precision(targets, scores)
    expected = [skm.average_precision_score(targets[:, k], scores[:, k]) for k in range(5)]
    assert per[:5] == pytest.approx(expected, abs=1e-12)
    assert np.isnan(per[5])  # no positives: skipped, as Perch/BirdSet do
    assert cmap == pytest.approx(np.mean(expected), abs=1e-12)
    macro, auc = macro_roc_auc(targets, scores)
    expected_auc = [skm.roc_auc_score(targets[:, k], scores[:, k]) for k in range(5)]
    assert auc[:5] == pytest.approx(expected_auc, abs=1e-12) and np.isnan(auc[5])
    assert macro == pytest.approx(np.mean(expected_auc), abs=1e-12)
    precision, recall, thresholds = precision_recall_curve(targets[:, 1], scores[:, 1])
    sk_p, sk_r, sk_t = skm.precision_recall_curve(targets[:, 1], scores[:, 1])
    np.testing.assert_allclose(precision, sk_p)
    np.testing.assert_allclose(recall, sk_r)
    np.testing.assert_allclose(thresholds, sk_t)


def test_hand_made_ap_and_auc():
    # ranked: + - + -  -> AP = (1/1 + 2/3) / 2; AUC: 3 of 4 pairs ordered
    y = np.array([1, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.7, 0.1])
    assert average_precision(y, s) == pytest.approx((1 + 2 / 3) / 2)
    assert roc_auc(y, s) == pytest.approx(0.75)
    assert roc_auc(y, np.full(4, 0.5)) == pytest.approx(0.5)  # ties count half
    assert np.isnan(roc_auc(np.ones(4), s)) and np.isnan(average_precision(np.zeros(4), s))


def test_soundscape_metrics_is_json_ready_and_lists_skipped_species():
    targets, scores = random_windows(3, k=3)
    report = soundscape_metrics(targets, scores, ["a", "b", "c"])
    json.dumps(report, allow_nan=False)
    assert report["skipped_for_cmap"] == ["c"]
    assert report["per_species"]["c"] == {"ap": None, "roc_auc": None, "positives": 0}
    assert report["per_species"]["a"]["positives"] == int(targets[:, 0].sum())
    assert report["cmap"] == pytest.approx(class_mean_average_precision(targets, scores)[0])
    perfect = soundscape_metrics(targets[:, :2], targets[:, :2] * 0.5 + 0.1, ["a", "b"])
    assert perfect["cmap"] == 1.0 and perfect["macro_roc_auc"] == 1.0
    curves = precision_recall_curves(targets, scores, ["a", "b", "c"])
    json.dumps(curves, allow_nan=True)
    assert curves["a"]["ap"] == pytest.approx(report["per_species"]["a"]["ap"])
    assert len(curves["a"]["precision"]) == len(curves["a"]["thresholds"]) + 1
    with pytest.raises(InvalidParameterError, match="'labels'"):
        soundscape_metrics(targets, scores, ["a"])
    with pytest.raises(InvalidParameterError, match="'scores'"):
        class_mean_average_precision(targets, scores[:, :2])


# ----------------------------------------------------------------------------- events
def ann(file, start, end, label):
    return Annotation(file, start, end, label)


def det(start, end, label, score, file=""):
    d = Detection(start, end, label, score)
    if file:  # detections read back from a Raven table carry their file
        return Annotation(file, start, end, label, score=score)
    return d


def test_event_matching_on_a_hand_made_example():
    truth = [
        ann("r1.wav", 1.0, 2.0, "tit"),  # 0: found by d0 (and d1, lower score)
        ann("r1.wav", 5.0, 6.0, "tit"),  # 1: d2 covers only 0.4 of it: missed
        ann("r1.wav", 8.0, 9.0, "gull"),  # 2: found by d4
        ann("r2.wav", 1.0, 2.0, "gull"),
    ]  # 3: d5 is in the other file: missed
    dets = [
        det(0.5, 3.5, "tit", 0.9, "r1.wav"),  # 0: TP (covers all of song 0)
        det(1.0, 2.0, "tit", 0.8, "r1.wav"),  # 1: FP, song 0 already taken
        det(5.6, 7.0, "tit", 0.95, "r1.wav"),  # 2: FP, 0.4 < 0.5 of song 1
        det(8.0, 9.0, "tit", 0.7, "r1.wav"),  # 3: FP, wrong species
        det(7.5, 8.5, "gull", 0.6, "/other/dir/r1.wav"),  # 4: TP, exactly half, same name
        det(1.0, 2.0, "gull", 0.99, "r3.wav"),
    ]  # 5: FP, no such selection in r3
    match = match_events(dets, truth, min_overlap=0.5)
    assert sorted(match.pairs) == [(0, 0), (4, 2)]
    assert match.false_positives == (1, 2, 3, 5)
    assert match.false_negatives == (1, 3)
    report = event_metrics(dets, truth, min_overlap=0.5)
    assert report["per_species"]["tit"] == {
        "tp": 1,
        "fp": 3,
        "fn": 1,
        "precision": 0.25,
        "recall": 0.5,
        "f1": pytest.approx(1 / 3),
    }
    assert report["per_species"]["gull"] == {
        "tp": 1,
        "fp": 1,
        "fn": 1,
        "precision": 0.5,
        "recall": 0.5,
        "f1": 0.5,
    }
    assert report["overall"]["tp"] == 2 and report["overall"]["fp"] == 4
    json.dumps(report)


def test_greedy_matching_follows_scores_and_iou_is_stricter():
    truth = [ann("", 0.0, 1.0, "a")]
    first, second = det(0.0, 3.0, "a", 0.4), det(0.1, 1.1, "a", 0.9)
    match = match_events([first, second], truth)
    assert match.pairs == ((1, 0),) and match.false_positives == (0,)  # higher score wins
    # the 3-s window covers the whole song (fraction 1) but IoU is 1/3
    assert match_events([first], truth, overlap="annotation").pairs == ((0, 0),)
    assert match_events([first], truth, overlap="iou").pairs == ()
    assert match_events([first], truth, overlap="iou", min_overlap=1 / 3).pairs == ((0, 0),)
    # one detection spanning two songs counts once
    two = [ann("", 0.0, 1.0, "a"), ann("", 2.0, 3.0, "a")]
    assert len(match_events([first], two).pairs) == 1
    assert event_metrics([first], two)["per_species"]["a"]["recall"] == 0.5
    # min_score drops weak detections, labels limit the species
    report = event_metrics([first, second], truth, min_score=0.5, labels=["a", "b"])
    assert report["per_species"]["a"]["fp"] == 0
    assert report["per_species"]["b"] == {
        "tp": 0,
        "fp": 0,
        "fn": 0,
        "precision": None,
        "recall": None,
        "f1": None,
    }
    with pytest.raises(InvalidParameterError, match="'overlap'"):
        match_events([first], truth, overlap="dice")
    assert match_events([], truth).false_negatives == (0,)
    assert match_events([first], []).false_positives == (0,)


def test_detect_events_times_each_window_by_its_middle_hop():
    """3-s windows every second: each answers for its middle second, so windows 5-7
    naming a species give 6-9 s and window 10 alone gives 11-12 s; runs touching the
    first or last window reach the recording's edges; "no bird" never becomes an event;
    with hop >= clip a window answers for all of itself."""
    from birdsong.rules import detect_events

    starts = np.arange(0.0, 18.0)  # windows 0-17, the last ending at 20 s
    scores = np.zeros((18, 3))
    scores[[5, 6, 7, 10], 0] = 0.9  # tit
    scores[[0, 1, 17], 1] = 0.8  # gull, at both edges
    scores[3, 2] = 0.99  # _Background
    kw = dict(
        thresholds=np.array([0.5, 0.5, 0.5]),
        labels=["tit", "gull", "_Background"],
        multi_label=True,
        clip_seconds=3.0,
        duration=20.0,
    )
    events = detect_events(starts, scores, hop_seconds=1.0, **kw)
    assert events == [
        (0.0, 3.0, 1, 0.8),  # windows 0-1: from the recording's start to 1 + 2
        (6.0, 9.0, 0, 0.9),
        (11.0, 12.0, 0, 0.9),
        (18.0, 20.0, 1, 0.8),  # window 17: from its middle to the recording's end
    ]
    wide = detect_events(starts[::4] * 1.0, scores[::4], hop_seconds=4.0, **kw)
    # windows at 0, 4, 8, 12, 16 s with a 4-s hop: no margin, each covers itself
    assert wide == [(0.0, 3.0, 1, 0.8)]
