"""Response assessment on hand-made burden series: RECIST nadir and absolute-change rules, iRECIST confirmation, IMWG."""
from __future__ import annotations

import pytest

from abm.config import AssessmentConfig
from abm.response import ResponseAssessor, best_response


def categories(series, criteria="recist", live=None, **settings):
    """Categories of a burden series (the first value is the baseline); ``live`` cells per value (default: some)."""
    assessor = ResponseAssessor(AssessmentConfig(criteria=criteria, **settings))
    live = live or [100] * len(series)
    return [assessor.assess(burden, cells).category for burden, cells in zip(series, live)]


def test_recist_partial_response_is_a_30_percent_fall_from_baseline():
    assert categories([1000, 710, 700, 699]) == [None, "SD", "PR", "PR"]


def test_recist_progression_is_measured_from_the_nadir_not_the_baseline():
    # nadir 500; 600 is +20 % over it and +100 um: PD, although still below the baseline of 1000
    assert categories([1000, 500, 600]) == [None, "PR", "PD"]
    assert categories([1000, 500, 599]) == [None, "PR", "PR"]  # +19.8 %: not yet


def test_recist_progression_needs_the_absolute_rise_too():
    # a small lesion: +50 % over the nadir but only +60 um: no PD with the 100 um rule
    assert categories([200, 120, 180]) == [None, "PR", "SD"]
    assert categories([200, 120, 220]) == [None, "PR", "PD"]
    assert categories([200, 120, 180], progression_absolute_um=50.0) == [None, "PR", "PD"]


def test_recist_complete_response_when_no_live_cell_is_left():
    assert categories([1000, 300, 250], live=[100, 5, 0]) == [None, "PR", "CR"]
    assert categories([1000, 80], complete_response_below_um=100.0) == [None, "CR"]


def test_nadir_includes_the_baseline():
    assert categories([500, 610]) == [None, "PD"]  # +22 % and +110 um over the baseline, the nadir so far


def test_irecist_confirms_progression_at_the_next_assessment():
    assert categories([1000, 1300, 1450], "irecist") == [None, "iUPD", "iCPD"]  # +150 um more: confirmed


def test_irecist_unconfirmed_progression_persists_or_resets():
    assert categories([1000, 1300, 1350], "irecist") == [None, "iUPD", "iUPD"]  # +50 um: neither confirmed nor reset
    assert categories([1000, 1300, 650], "irecist") == [None, "iUPD", "iPR"]  # pseudo-progression: the bar resets
    assert categories([1000, 1300, 650, 800], "irecist") == [None, "iUPD", "iPR", "iUPD"]  # a new iUPD, from the nadir


def test_myeloma_categories_by_marker_fall():
    assert categories([100, 80, 70, 45, 9, 0], "myeloma") == [None, "SD", "MR", "PR", "VGPR", "CR"]


def test_myeloma_progression_needs_two_consecutive_assessments():
    assessor = ResponseAssessor(AssessmentConfig(criteria="myeloma", marker_progression_absolute=5.0))
    results = [assessor.assess(marker, 100) for marker in (100, 40, 60, 70, 40, 60)]
    assert [r.category for r in results] == [None, "PR", "MR", "PD", "PR", "MR"]
    assert [r.pending_progression for r in results] == [False, False, True, False, False, True]
    assert results[3].progression and not results[2].progression


def test_myeloma_progression_needs_the_absolute_rise():
    assessor = ResponseAssessor(AssessmentConfig(criteria="myeloma", marker_progression_absolute=5.0))
    results = [assessor.assess(marker, 100) for marker in (100, 10, 14, 18)]
    assert [r.category for r in results] == [None, "VGPR", "PR", "PR"]
    assert [r.pending_progression for r in results] == [False, False, False, True]  # +4 is below the 5 needed; +8 is not


def test_best_response_orders_by_the_criteria():
    assert best_response([None, "SD", "PR", "PD"], "recist") == "PR"
    assert best_response([None, "iUPD", "iSD"], "irecist") == "iSD"
    assert best_response([None, "MR", "VGPR", "PD"], "myeloma") == "VGPR"
    assert best_response([None], "recist") is None


@pytest.mark.parametrize("series, expected", [([1000, 1000], "SD"), ([1000, 1300], "PD")])
def test_changes_are_reported(series, expected):
    assessor = ResponseAssessor(AssessmentConfig())
    assessor.assess(series[0], 10)
    result = assessor.assess(series[1], 10)
    assert result.category == expected and result.change_from_baseline == pytest.approx(series[1] / series[0] - 1)
