"""Treatment: plasma pharmacokinetics of dosed drugs, lines of therapy with their end rules, response assessment, events.

A :class:`Therapy` follows one treatment arm through a run (host side; a
few numbers per step). The rule ``therapy`` calls :meth:`Therapy.begin_step`
at the start of each cell step: it starts the first line at ``start_day``,
ends a line after its cycles, records the doses that fall in the step, and
sets each dosed drug's plasma level for the field solver (the mean over the
step, so a drug with a half-life of minutes still delivers the right
exposure). The rule ``assessment`` calls :meth:`Therapy.end_step`: at the
assessment cadence it measures the burden, classifies the response
(:mod:`abm.response`) and applies the end rules of the current line
(progression, response, adaptive burden thresholds), which may start the
next line.

Plasma levels are linear in the doses (each a sum of one or two
exponential phases, :class:`Pharmacokinetics`), evaluated and integrated in
closed form.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from abm.config import AssessmentConfig, DrugConfig, EndRule, LineConfig, PharmacokineticsConfig, TreatmentConfig
from abm.response import ResponseAssessor, best_response
from abm.rundir import EVENT_COLUMNS

#: ``burden(assessment) -> (burden, live tumor cells)`` of the current lattice (:func:`abm.measurement.burden`).
Burden = Callable[[AssessmentConfig], tuple[float, int]]


@dataclass(frozen=True)
class Dose:
    """A dose given: start time (h), amount (plasma level units), infusion duration (h; 0 for a bolus)."""

    start_h: float
    amount: float
    infusion_h: float


class Pharmacokinetics:
    """Plasma level and exposure of one drug from its doses (linear; one or two exponential phases).

    A bolus of amount ``A`` contributes ``A sum_i f_i exp(-k_i t)``; an
    infusion delivers ``A`` at rate ``A / T`` over ``T`` hours. ``f`` and
    ``k`` come from the config: one phase (``k = ln 2 / half_life_h``) or a
    distribution phase of share ``distribution_fraction`` and the terminal one.
    """

    def __init__(self, pk: PharmacokineticsConfig) -> None:
        self.phases: list[tuple[float, float]] = [(1.0 - pk.distribution_fraction, math.log(2.0) / pk.half_life_h)]
        if pk.distribution_half_life_h is not None:
            self.phases.append((pk.distribution_fraction, math.log(2.0) / pk.distribution_half_life_h))

    def level(self, doses: list[Dose], time_h: float) -> float:
        """Plasma level at ``time_h``, in the drug's field units."""
        total = 0.0
        for dose in doses:
            since = time_h - dose.start_h
            if since < 0:
                continue
            for share, rate in self.phases:
                if dose.infusion_h == 0:
                    total += share * dose.amount * math.exp(-rate * since)
                else:
                    per_h = dose.amount / dose.infusion_h
                    infused = min(since, dose.infusion_h)
                    total += share * per_h / rate * -math.expm1(-rate * infused) * math.exp(-rate * (since - infused))
        return total

    def exposure(self, doses: list[Dose], start_h: float, end_h: float) -> float:
        """Integral of the plasma level from ``start_h`` to ``end_h`` (units x h)."""
        return sum(self._cumulative(dose, end_h) - self._cumulative(dose, start_h) for dose in doses)

    def _cumulative(self, dose: Dose, time_h: float) -> float:
        """Integral of one dose's contribution from its start to ``time_h``."""
        since = time_h - dose.start_h
        if since <= 0:
            return 0.0
        total = 0.0
        for share, rate in self.phases:
            if dose.infusion_h == 0:
                total += share * dose.amount / rate * -math.expm1(-rate * since)
                continue
            per_h = dose.amount / dose.infusion_h
            infused = min(since, dose.infusion_h)
            total += share * per_h / rate * (infused + math.expm1(-rate * infused) / rate)
            if since > dose.infusion_h:
                at_end = share * per_h / rate * -math.expm1(-rate * dose.infusion_h)
                total += at_end / rate * -math.expm1(-rate * (since - dose.infusion_h))
        return total


class Therapy:
    """One treatment arm through a run: lines, doses, plasma levels, assessments and events.

    Args:
        treatment: the arm (None: untreated; the object then only reports that).
        drugs: the config's drugs (those with ``pk`` can be dosed).
        dt_h: cell step, h.

    Attributes:
        line: index of the current line, or None before the start and after the last.
        events: every event so far, as dicts with the keys :data:`EVENT_COLUMNS`.
        plasma: drug -> mean plasma level over the current step (dosed drugs only).
    """

    def __init__(self, treatment: TreatmentConfig | None, drugs: dict[str, DrugConfig], dt_h: float) -> None:
        self.treatment = treatment
        self.dt_h = dt_h
        self.kinetics = {name: Pharmacokinetics(drug.pk) for name, drug in drugs.items() if drug.pk is not None}
        self.doses: dict[str, list[Dose]] = {name: [] for name in self.kinetics}
        self.plasma: dict[str, float] = {name: 0.0 for name in self.kinetics}
        self.events: list[dict[str, Any]] = []
        self.line: int | None = None
        self.started = False
        self.line_start_h = 0.0
        self.assessor: ResponseAssessor | None = None
        self.next_assessment_h = math.inf
        self.first_progression_h: float | None = None
        self.arm_assessor: ResponseAssessor | None = None  # never re-baselined: the arm's endpoints
        self.arm_categories: list[str] = []
        self.arm_changes: list[float] = []
        self.line_spans: list[dict[str, Any]] = []
        if treatment is not None:
            self.lines = {line.name: index for index, line in enumerate(treatment.lines)}
            self.start_h = treatment.start_day * 24.0

    @property
    def active_line(self) -> LineConfig | None:
        return None if self.line is None else self.treatment.lines[self.line]

    # ------------------------------------------------------------------ events

    def _event(self, time_h: float, event: str, **values: Any) -> None:
        row = {column: None for column in EVENT_COLUMNS}
        row.update(time_h=time_h, time_days=time_h / 24.0, event=event,
                   line=self.active_line.name if self.active_line is not None else None)
        row.update(values)
        self.events.append(row)

    def _start_line(self, burden: Burden, index: int | None, time_h: float, reason: str) -> None:
        """End the current line (if any) for ``reason`` and start line ``index`` (None: treatment stops)."""
        if self.line is not None:
            self._event(time_h, "line_end", detail=reason)
            self.line_spans[-1].update(end_h=time_h, reason=reason)
        self.line = index
        if index is None:
            self._event(time_h, "treatment_end", detail=reason)
            return
        line = self.treatment.lines[index]
        self.line_start_h = time_h
        self._event(time_h, "line_start", detail=reason)
        self.line_spans.append({"line": line.name, "start_h": time_h, "end_h": None, "reason": None})
        self.assessor = ResponseAssessor(self.treatment.assessment)
        self._assess(burden, time_h, baseline=True)

    # ------------------------------------------------------------------ each step

    def begin_step(self, now: float, burden: Burden) -> None:
        """Start or end lines by time, give the doses of the step that starts at ``now`` (h), set the mean plasma
        levels of the step; ``burden`` measures the lesion for a new line's baseline."""
        if self.treatment is not None:
            end = now + self.dt_h
            if not self.started and now >= self.start_h - 1e-9:
                self.started = True
                self.next_assessment_h = now + self.treatment.assessment.every_days * 24.0
                self.arm_assessor = ResponseAssessor(self.treatment.assessment)
                self._start_line(burden, 0, now, "start of treatment")
            line = self.active_line
            if line is not None and line.end.cycles is not None:
                if now >= self.line_start_h + line.end.cycles * line.cycle_days * 24.0 - 1e-9:
                    self._start_line(burden, self._next(line), now, f"{line.end.cycles} cycles given")
            self._give_doses(now, end)
        for name, kinetics in self.kinetics.items():
            self.plasma[name] = kinetics.exposure(self.doses[name], now, now + self.dt_h) / self.dt_h

    def _next(self, line: LineConfig) -> int | None:
        return None if line.next is None else self.lines[line.next]

    def _give_doses(self, now: float, end: float) -> None:
        """Record every dose of the current line that starts in [now, end)."""
        line = self.active_line
        if line is None or not line.doses:
            return
        if line.cycle_days is None:
            cycles: list[int] = [0]
            cycle_h = 0.0
        else:
            cycle_h = line.cycle_days * 24.0
            first = max(0, math.floor((now - self.line_start_h) / cycle_h) - 1)  # a cycle's doses lie within it
            last = math.floor((end - self.line_start_h) / cycle_h)
            limit = line.end.cycles if line.end.cycles is not None else last + 1
            cycles = list(range(first, min(last + 1, limit)))
        for cycle in cycles:
            cycle_start = self.line_start_h + cycle * cycle_h
            for dose in line.doses:
                for day in dose.days:
                    start = cycle_start + day * 24.0
                    if now - 1e-9 <= start < end - 1e-9:
                        self.doses[dose.drug].append(Dose(start, dose.amount, dose.infusion_h))
                        self._event(start, "dose", cycle=cycle + 1, drug=dose.drug, amount=dose.amount,
                                    infusion_h=dose.infusion_h)

    def end_step(self, start_h: float, burden: Burden) -> None:
        """At the assessment cadence: measure (``burden``), classify, apply the current line's end rules; the step
        started at ``start_h`` (h) and the assessment is at its end."""
        if self.treatment is None or not self.started:
            return
        now = start_h + self.dt_h  # the rule runs at the end of the step
        if now < self.next_assessment_h - 1e-9:
            return
        self.next_assessment_h += self.treatment.assessment.every_days * 24.0
        result = self._assess(burden, now)
        line = self.active_line
        if line is None:
            return
        rule = line.end
        order = self.treatment.assessment.categories
        reason = None
        if rule.progression and result.progression:
            reason = f"progression ({result.category})"
        elif rule.response is not None and result.category in order and order.index(result.category) <= order.index(rule.response):
            reason = f"response {result.category}"
        elif rule.burden_below is not None and result.burden < rule.burden_below * self._burden_baseline(rule):
            reason = f"burden below {rule.burden_below:g} of the {rule.burden_baseline}'s baseline"
        elif rule.burden_above is not None and result.burden > rule.burden_above * self._burden_baseline(rule):
            reason = f"burden above {rule.burden_above:g} of the {rule.burden_baseline}'s baseline"
        if reason is not None:
            self._start_line(burden, self._next(line), now, reason)

    def _burden_baseline(self, rule: EndRule) -> float:
        """The burden that ``burden_below`` / ``burden_above`` are fractions of: the line's or the treatment's."""
        return (self.assessor if rule.burden_baseline == "line" else self.arm_assessor).baseline

    def _assess(self, burden: Burden, time_h: float, baseline: bool = False):
        """Measure the burden, classify it, record the event (a baseline at the start of each line).

        The line's assessor (re-baselined at each line start) decides the end
        rules; the arm's assessor (baselined once, at the start of treatment)
        gives the category and change the endpoints keep, up to and including
        the first progression: the line's (``assessment.progression_from:
        line``) or the arm's (``treatment``).
        """
        assessment = self.treatment.assessment
        size, live = burden(assessment)
        result = self.assessor.assess(size, live)
        arm_result = None
        if not baseline:
            arm_result = self.arm_assessor.assess(size, live)
            if self.first_progression_h is None:
                self.arm_categories.append(arm_result.category)
                self.arm_changes.append(arm_result.change_from_baseline)
        elif self.arm_assessor.baseline is None:
            self.arm_assessor.assess(size, live)  # the arm's baseline: the first line's
        endpoint = result if assessment.progression_from == "line" else arm_result
        if not baseline and endpoint.progression and self.first_progression_h is None:
            self.first_progression_h = time_h
        self._event(time_h, "baseline" if baseline else "assessment", category=result.category, burden=size,
                    change_from_baseline=result.change_from_baseline,
                    detail="pending progression" if result.pending_progression else None,
                    treatment_category=None if arm_result is None else arm_result.category,
                    treatment_change_from_baseline=None if arm_result is None else arm_result.change_from_baseline)
        return result

    # ------------------------------------------------------------------ endpoints

    def summary(self, end_h: float) -> dict[str, Any]:
        """Endpoints: best overall response and best change of the burden (the waterfall's bar), both from the
        burden at the start of treatment and up to the first progression; time to progression from the start of
        treatment (censored at the end of the run where none), progression judged as ``progression_from`` says
        (over each line's nadir, or over the nadir since the start of treatment); time on each line, exposure to
        each dosed drug."""
        if self.treatment is None:
            return {"treated": False}
        start = self.start_h
        progressed = self.first_progression_h is not None
        lines = [{"line": span["line"], "start_day": span["start_h"] / 24.0,
                  "end_day": (span["end_h"] if span["end_h"] is not None else end_h) / 24.0,
                  "days": ((span["end_h"] if span["end_h"] is not None else end_h) - span["start_h"]) / 24.0,
                  "ended_by": span["reason"] or "end of run"} for span in self.line_spans]
        exposure = {name: {"doses": len(doses), "plasma_auc_unit_h": kinetics.exposure(doses, 0.0, end_h)}
                    for name, kinetics in self.kinetics.items() for doses in [self.doses[name]] if doses}
        return {
            "treated": True,
            "criteria": self.treatment.assessment.criteria,
            "best_overall_response": best_response(self.arm_categories, self.treatment.assessment.criteria),
            "best_change_from_baseline": min(self.arm_changes) if self.arm_changes else None,
            "time_to_progression_days": ((self.first_progression_h if progressed else end_h) - start) / 24.0 if self.started else None,
            "progression_censored": not progressed,
            "progression_from": self.treatment.assessment.progression_from,
            "lines": lines,
            "exposure": exposure,
        }
