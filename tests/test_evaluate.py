"""Metrics against hand-computed values, undefined figures reported as such, and the calibration rule."""

import json

import pytest

from guard_sdk.training.evaluate import calibrate, metrics, report, to_markdown, write_report

# Sorted by score: 0.9 U, 0.8 U, 0.7 U, 0.6 S, 0.4 S, 0.3 U, 0.2 S, 0.1 S.
LABELS = [1, 1, 1, 0, 0, 0, 0, 1]
SCORES = [0.9, 0.8, 0.3, 0.6, 0.2, 0.1, 0.4, 0.7]


def test_metrics_match_hand_computed_values():
    m = metrics(LABELS, SCORES, 0.5)
    # At 0.5: TP 3 (0.9, 0.8, 0.7), FN 1 (0.3), FP 1 (0.6), TN 3.
    assert m["n"] == 8 and m["unsafe"] == 4
    assert m["precision"] == 0.75 and m["recall"] == 0.75 and m["f1"] == 0.75
    assert m["fpr"] == 0.25 and m["accuracy"] == 0.75
    # Average precision: recall steps of 1/4 at precisions 1, 1, 1 and 4/6.
    assert m["auprc"] == pytest.approx(0.75 + 0.25 * 4 / 6)


def test_threshold_is_inclusive():
    assert metrics([1, 0], [0.5, 0.49], 0.5)["recall"] == 1.0
    assert metrics([1, 0], [0.5, 0.49], 0.5)["fpr"] == 0.0


def test_undefined_figures_are_none_not_zero():
    safe_only = metrics([0, 0, 0], [0.1, 0.7, 0.2], 0.5)
    assert safe_only["recall"] is None and safe_only["auprc"] is None and safe_only["f1"] is None
    assert safe_only["precision"] == 0.0 and safe_only["fpr"] == pytest.approx(1 / 3)
    unsafe_only = metrics([1, 1], [0.1, 0.2], 0.5)
    assert unsafe_only["fpr"] is None and unsafe_only["precision"] is None and unsafe_only["recall"] == 0.0


def test_report_splits_by_source_and_level_and_writes_json_and_markdown(tmp_path):
    sources = ["a", "a", "b", "a", "b", "b", "a", "b"]
    levels = ["prompt"] * 4 + ["response"] * 4
    result = report(LABELS, SCORES, sources, levels, 0.5)
    assert result["overall"] == metrics(LABELS, SCORES, 0.5)
    assert result["by_source"]["a"] == metrics([1, 1, 0, 0], [0.9, 0.8, 0.6, 0.4], 0.5)
    assert result["by_level"]["response"] == metrics(LABELS[4:], SCORES[4:], 0.5)
    json_path, md_path = write_report(result, tmp_path, "eval", "unit")
    assert json.loads(json_path.read_text()) == result
    table = md_path.read_text()
    assert table == to_markdown(result, "unit")
    assert "| **all** | 8 | 4 | 0.750 | 0.750 | 0.750 | 0.917 | 0.250 | 0.750 |" in table
    assert "| level: prompt |" in table and "| `b` |" in table


def test_calibrate_max_f1_picks_the_best_cut_with_a_margin():
    # Cuts: 0.7 gives P 1, R 3/4 (F1 0.857), the best; halfway to the next lower score, 0.6.
    assert calibrate(LABELS, SCORES, "max_f1") == pytest.approx(0.65)
    assert metrics(LABELS, SCORES, calibrate(LABELS, SCORES, "max_f1"))["f1"] == pytest.approx(6 / 7)
    assert calibrate(LABELS, SCORES, "fixed", 0.3) == 0.3
    with pytest.raises(ValueError, match="both safe and unsafe"):
        calibrate([0, 0], [0.1, 0.2], "max_f1")
    with pytest.raises(ValueError, match="unknown calibration rule"):
        calibrate(LABELS, SCORES, "youden")


def test_calibrate_max_f1_under_a_false_positive_ceiling_gives_up_recall_for_fewer_false_alarms():
    # Unceiled, the best F1 (0.8) flags every unsafe row and two of four safe ones: cut 0.25, FPR 0.5.
    labels, scores = [1, 1, 1, 1, 0, 0, 0, 0], [0.9, 0.8, 0.6, 0.3, 0.7, 0.5, 0.2, 0.1]
    assert calibrate(labels, scores, "max_f1") == pytest.approx(0.25)
    assert metrics(labels, scores, 0.25)["fpr"] == 0.5
    # A ceiling of 0.25: the best F1 among cuts that flag at most one safe row is 0.75, at 0.6.
    assert calibrate(labels, scores, "max_f1", max_fpr=0.25) == pytest.approx(0.55)
    assert metrics(labels, scores, 0.55)["recall"] == 0.75 and metrics(labels, scores, 0.55)["fpr"] == 0.25
    assert calibrate(labels, scores, "max_f1", max_fpr=0.0) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="no cut keeps"):
        calibrate([1, 0], [0.1, 0.9], "max_f1", max_fpr=0.0)


def test_calibrate_by_source_holds_the_ceiling_for_every_source_alike():
    # Source "easy" has 18 safe rows far below everything; "hard" has 2 safe rows at 0.8 and 0.6 beside 2 unsafe
    # rows at 0.9 and 0.7. Row by row, the best F1 (0.8, cut 0.7) flags one safe row of 20: an FPR of 0.05, under
    # the ceiling of 0.1. Weighted by source (each row 1 / its source's size), that safe row weighs 1/4 against
    # 1/2 + 1 of safe weight: 0.17, over the ceiling, which then holds only at the cut 0.9.
    labels = [1, 0, 1, 0] + [0] * 18
    scores = [0.9, 0.8, 0.7, 0.6] + [0.1] * 18
    groups = ["hard"] * 4 + ["easy"] * 18
    assert calibrate(labels, scores, "max_f1", max_fpr=0.1) == pytest.approx(0.65)
    assert calibrate(labels, scores, "max_f1", max_fpr=0.1, groups=groups) == pytest.approx(0.85)
    # Without a ceiling the weights change nothing here: the best F1 is the cut 0.7 either way.
    assert calibrate(labels, scores, "max_f1", groups=groups) == calibrate(labels, scores, "max_f1")
