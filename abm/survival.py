"""Survival statistics of a comparison's arms, from lifelines (a maintained library, not written here).

Times are days to progression; a run that ends without progression is
censored at its end. For each arm: the Kaplan-Meier estimate with its 95 %
pointwise band (lifelines' exponential Greenwood, the log(-log S) band), the
median with its 95 % interval (where that band crosses 0.5, as R's survfit
reports it: Brookmeyer-Crowley), and the restricted mean time to progression
up to a common horizon. Between arms: the log-rank test of each arm against
the reference arm and the multivariate log-rank test of all arms, and the
hazard ratio of each arm against the reference from one Cox model with an
indicator per other arm (Efron's ties, lifelines' default), with its 95 %
interval.

tests/test_compare.py checks lifelines on the Freireich 6-MP leukaemia data
against the published figures (log-rank chi-square 16.79; Cox coefficient
1.572, hazard ratio 4.82; medians 23 and 8 weeks).
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

#: Columns of a Kaplan-Meier table (``km.parquet`` adds ``arm``).
KM_COLUMNS = ("time", "at_risk", "events", "censored", "survival", "survival_lower", "survival_upper")


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _fitter(times: np.ndarray, events: np.ndarray):
    from lifelines import KaplanMeierFitter

    return KaplanMeierFitter().fit(np.asarray(times, dtype=float), np.asarray(events, dtype=bool))


def kaplan_meier(times: np.ndarray, events: np.ndarray):
    """The Kaplan-Meier table: one row at time 0, then one per distinct time with a progression or a censoring.

    Args:
        times: ``float`` ``(n,)``: days to progression or to censoring, per run.
        events: ``bool`` ``(n,)``: True where the run progressed, False where it is censored.

    Returns:
        A DataFrame with columns :data:`KM_COLUMNS`: the time (days), runs at risk just before it, progressions
        and censorings at it, the survival estimate after it and its 95 % band.
    """
    import pandas

    fitter = _fitter(times, events)
    table = fitter.event_table
    band = fitter.confidence_interval_survival_function_
    return pandas.DataFrame({
        "time": table.index.to_numpy(dtype=float),
        "at_risk": table["at_risk"].to_numpy(dtype=float),
        "events": table["observed"].to_numpy(dtype=float),
        "censored": table["censored"].to_numpy(dtype=float),
        "survival": fitter.survival_function_.iloc[:, 0].to_numpy(dtype=float),
        "survival_lower": band.iloc[:, 0].to_numpy(dtype=float),
        "survival_upper": band.iloc[:, 1].to_numpy(dtype=float),
    })


def median(times: np.ndarray, events: np.ndarray) -> tuple[float | None, float | None, float | None]:
    """``(median, lower, upper)`` time to progression with its 95 % interval, days; None where not reached."""
    from lifelines.utils import median_survival_times

    fitter = _fitter(times, events)
    interval = median_survival_times(fitter.confidence_interval_survival_function_).to_numpy(dtype=float)[0]
    return _finite_or_none(fitter.median_survival_time_), _finite_or_none(interval[0]), _finite_or_none(interval[1])


def restricted_mean(times: np.ndarray, events: np.ndarray, horizon_days: float) -> float:
    """Restricted mean time to progression up to ``horizon_days``: the area under the Kaplan-Meier curve, days."""
    from lifelines.utils import restricted_mean_survival_time

    return float(restricted_mean_survival_time(_fitter(times, events), t=horizon_days))


def log_rank(times_a: np.ndarray, events_a: np.ndarray, times_b: np.ndarray,
             events_b: np.ndarray) -> tuple[float | None, float | None]:
    """Log-rank test of two groups: ``(chi-square, p)``, one degree of freedom; ``(None, None)`` when neither group
    has an event (JSON has no NaN: ``compare.json`` says null)."""
    from lifelines.statistics import logrank_test

    if not (np.any(events_a) or np.any(events_b)):
        return None, None
    result = logrank_test(np.asarray(times_a, dtype=float), np.asarray(times_b, dtype=float),
                          np.asarray(events_a, dtype=bool), np.asarray(events_b, dtype=bool))
    return float(result.test_statistic), float(result.p_value)


def log_rank_all(times: np.ndarray, events: np.ndarray, groups: np.ndarray) -> dict[str, float | None]:
    """Multivariate log-rank test of equal survival in every group: ``chi2``, ``df`` (groups - 1), ``p``; None
    without events or with one group."""
    from lifelines.statistics import multivariate_logrank_test

    groups = np.asarray(groups)
    df = len(np.unique(groups)) - 1
    if not np.any(events) or df < 1:
        return {"chi2": None, "df": df, "p": None}
    result = multivariate_logrank_test(np.asarray(times, dtype=float), groups, np.asarray(events, dtype=bool))
    return {"chi2": float(result.test_statistic), "df": df, "p": float(result.p_value)}


def hazard_ratios(times: np.ndarray, events: np.ndarray, groups: np.ndarray, reference: str) -> dict[str, dict[str, Any]]:
    """Hazard ratio of progression of each group against ``reference``: one Cox model with an indicator per other group.

    Returns:
        group -> ``{"hr", "ci95": [lower, upper], "p"}``; where the model cannot estimate it (no progression
        in the groups, a group whose runs all progress before or after every other's: the likelihood has no
        maximum) ``{"hr": None, "ci95": [None, None], "p": None, "note": why}``.
    """
    import pandas
    from lifelines import CoxPHFitter

    groups = np.asarray(groups)
    others = [group for group in dict.fromkeys(groups.tolist()) if group != reference]
    blank = {"hr": None, "ci95": [None, None], "p": None}
    if not others:
        return {}
    if not np.any(events):
        return {group: {**blank, "note": "no progression in any arm"} for group in others}
    frame = pandas.DataFrame({"time": np.asarray(times, dtype=float), "event": np.asarray(events, dtype=bool)})
    for group in others:
        frame[group] = (groups == group).astype(float)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a non-converging fit warns; its numbers would mean nothing
            summary = CoxPHFitter().fit(frame, "time", "event").summary
    except Exception as exc:  # lifelines raises ConvergenceError, or warns on separation (made an error above)
        note = (f"Cox model not estimable ({type(exc).__name__}): the arms' progression times barely overlap "
                "(separation) or there are too few progressions")
        return {group: {**blank, "note": note} for group in others}
    out = {}
    for group in others:
        row = summary.loc[group]
        out[group] = {"hr": _finite_or_none(row["exp(coef)"]),
                      "ci95": [_finite_or_none(row["exp(coef) lower 95%"]), _finite_or_none(row["exp(coef) upper 95%"])],
                      "p": _finite_or_none(row["p"])}
    return out
