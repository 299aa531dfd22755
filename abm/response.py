"""Response assessment of a tumor burden series: RECIST-like, iRECIST-like and IMWG-like (myeloma).

A :class:`ResponseAssessor` follows one line of therapy: its first
measurement is the baseline; each later one gets a category from the
burden, the baseline and the nadir (the smallest burden so far). Burden is
the lesion's equivalent diameter (um) for ``recist`` and ``irecist``, a
marker proportional to live tumor cells for ``myeloma``.

* ``recist`` [RECIST 1.1]: CR when no live tumor cell is left (or the
  diameter is at most ``complete_response_below_um``); PD when the diameter
  rose by at least ``progression_rise`` over the nadir and by at least
  ``progression_absolute_um``; PR when it fell by at least
  ``partial_response_fall`` from baseline; SD otherwise.
* ``irecist`` [iRECIST]: a first RECIST PD is unconfirmed progression
  (iUPD); it is confirmed (iCPD) at the next assessment if the diameter rose
  again by at least ``progression_absolute_um`` over the iUPD measurement;
  if instead the RECIST category is CR, PR or SD the bar resets (iCR, iPR,
  iSD); otherwise iUPD persists.
* ``myeloma`` [IMWG]: on the marker ``M``: CR at or below the detection
  limit; VGPR at a fall of 90 %, PR 50 %, MR 25 % from baseline; PD (a rise
  of 25 % over the nadir and of ``marker_progression_absolute``) only when
  two consecutive assessments meet it: the first is reported by the other
  rules with ``pending progression``.

Progression categories (``PD``, ``iCPD``) are what end a line whose end rule
says ``progression``.
"""
from __future__ import annotations

from dataclasses import dataclass

from abm.config import PROGRESSION, RESPONSE_CATEGORIES, AssessmentConfig

PROGRESSION_CATEGORIES = frozenset(category for categories in PROGRESSION.values() for category in categories)


@dataclass(frozen=True)
class Assessment:
    """One assessment.

    Attributes:
        category: the response category; None for the baseline measurement.
        burden: diameter (um) or marker at this assessment.
        change_from_baseline: relative change of the burden from the line's baseline.
        change_from_nadir: relative change from the nadir before this assessment.
        pending_progression: myeloma: PD met once, not yet confirmed; irecist: in iUPD.
    """

    category: str | None
    burden: float
    change_from_baseline: float
    change_from_nadir: float
    pending_progression: bool = False

    @property
    def progression(self) -> bool:
        return self.category in PROGRESSION_CATEGORIES


def _relative(value: float, reference: float) -> float:
    return (value - reference) / reference if reference > 0 else (0.0 if value == 0 else float("inf"))


class ResponseAssessor:
    """Classifies successive burden measurements of one line of therapy (the first is the baseline).

    Args:
        config: the assessment settings (criteria and thresholds).
    """

    def __init__(self, config: AssessmentConfig) -> None:
        self.config = config
        self.baseline: float | None = None
        self.nadir: float | None = None
        self.unconfirmed_burden: float | None = None  # irecist: burden at iUPD; myeloma: at the first PD
        self.history: list[Assessment] = []

    def assess(self, burden: float, live_cells: int) -> Assessment:
        """Classify one measurement and remember it.

        Args:
            burden: diameter in um (recist, irecist) or marker (myeloma).
            live_cells: live tumor cells (CR needs none left, for recist and irecist).

        Returns:
            The :class:`Assessment` (category None for the baseline).
        """
        if self.baseline is None:
            self.baseline = self.nadir = burden
            result = Assessment(None, burden, 0.0, 0.0)
        else:
            nadir = self.nadir
            if self.config.criteria == "myeloma":
                result = self._myeloma(burden, nadir)
            else:
                result = self._recist(burden, live_cells, nadir)
            self.nadir = min(nadir, burden)
        self.history.append(result)
        return result

    def _recist_category(self, burden: float, live_cells: int, nadir: float) -> str:
        config = self.config
        if live_cells == 0 or burden <= config.complete_response_below_um:
            return "CR"
        if burden - nadir >= config.progression_absolute_um and burden >= nadir * (1.0 + config.progression_rise):
            return "PD"
        if burden <= self.baseline * (1.0 - config.partial_response_fall):
            return "PR"
        return "SD"

    def _recist(self, burden: float, live_cells: int, nadir: float) -> Assessment:
        category = self._recist_category(burden, live_cells, nadir)
        pending = False
        if self.config.criteria == "irecist":
            if self.unconfirmed_burden is not None:
                if burden - self.unconfirmed_burden >= self.config.progression_absolute_um:
                    category = "iCPD"
                elif category == "PD":
                    category, pending = "iUPD", True
                else:
                    category = "i" + category
                    self.unconfirmed_burden = None
            elif category == "PD":
                category, pending = "iUPD", True
                self.unconfirmed_burden = burden
            else:
                category = "i" + category
        return Assessment(category, burden, _relative(burden, self.baseline), _relative(burden, nadir), pending)

    def _myeloma(self, marker: float, nadir: float) -> Assessment:
        config = self.config
        rises = marker >= 1.25 * nadir and marker - nadir >= config.marker_progression_absolute and marker > nadir
        pending = False
        if rises and self.unconfirmed_burden is not None:
            category = "PD"
        else:
            fall = 1.0 - marker / self.baseline if self.baseline > 0 else 0.0
            if marker <= config.marker_detection_limit:
                category = "CR"
            elif fall >= 0.9:
                category = "VGPR"
            elif fall >= 0.5:
                category = "PR"
            elif fall >= 0.25:
                category = "MR"
            else:
                category = "SD"
            pending = rises
        self.unconfirmed_burden = marker if rises else None
        return Assessment(category, marker, _relative(marker, self.baseline), _relative(marker, nadir), pending)


def best_response(categories: list[str | None], criteria: str) -> str | None:
    """The best category of a list (None entries, the baselines, skipped), by the criteria's order; None if none."""
    order = RESPONSE_CATEGORIES[criteria]
    found = [category for category in categories if category is not None]
    return min(found, key=order.index) if found else None
