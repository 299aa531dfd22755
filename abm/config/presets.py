"""Literature default sets, with their sources: the substrate presets and the immune cells' drug sensitivity.

Sources: [PCi] PhysiCell cancer-immune project, [HCC] SPQSP-HCC parameter
file, [MAPLE] SPQSP-PDAC calibration anchors, [dP06] de Pillis 2006
(docs/fields.md and ../shared/reference/parameters.md give the details).
"""
from __future__ import annotations

import math
from typing import Any


MINUTES_PER_SECOND = 1.0 / 60.0
UM2_PER_CM2 = 1.0e8

#: Default parameter sets of the substrates, chosen with ``preset:`` in a field;
#: keys given beside ``preset`` override the preset's. Sources: [PCi] PhysiCell
#: cancer-immune project, [HCC] SPQSP-HCC parameter file (cm^2/s and 1/s,
#: converted here), [MAPLE] SPQSP-PDAC calibration anchors, [dP06] de Pillis
#: 2006; "assumption" marks a value with no source (see docs/fields.md).
FIELD_PRESETS: dict[str, dict[str, Any]] = {
    # PhysiCell's oxygen [PCi]; vessel exchange rate: assumption.
    "oxygen": {"units": "mmHg", "D_um2_per_min": 1.0e5, "decay_per_min": 0.1, "solver": "steady",
               "initial": 38.0, "boundary": {"default": 38.0}, "uptake_per_min": {"tumor": 10.0},
               "vessel": {"supply_per_min": 10.0, "blood_level": 38.0}},
    # Generic T-cell attractant [PCi]: D 1000 um^2/min, decay 0.016/min, secretion 10/min toward 1.
    "chemokine": {"units": "au", "D_um2_per_min": 1000.0, "decay_per_min": 0.016,
                  "secretion_per_min": {"tumor": 10.0}, "secretion_saturation": 1.0},
    # CCL2 [HCC]: 1.31e-8 cm^2/s, 1.67e-5/s; secretion: assumption (the generic chemokine's).
    "ccl2": {"units": "au", "D_um2_per_min": 1.31e-8 * UM2_PER_CM2 * 60.0, "decay_per_min": 1.67e-5 * 60.0,
             "secretion_per_min": {"tumor": 10.0}, "secretion_saturation": 1.0},
    # TGF-beta-like suppressive cytokine [HCC]: 2.6e-7 cm^2/s, 1.65e-4/s; tumor secretion: assumption.
    "tgf_beta": {"units": "au", "D_um2_per_min": 2.6e-7 * UM2_PER_CM2 * 60.0, "decay_per_min": 1.65e-4 * 60.0,
                 "secretion_per_min": {"tumor": 1.0}, "secretion_saturation": 1.0},
    # IL-10 [HCC]: 1.4e-8 cm^2/s, 4.6e-5/s; tumor secretion: assumption.
    "il10": {"units": "au", "D_um2_per_min": 1.4e-8 * UM2_PER_CM2 * 60.0, "decay_per_min": 4.6e-5 * 60.0,
             "secretion_per_min": {"tumor": 1.0}, "secretion_saturation": 1.0},
    # Checkpoint antibody (anti-PD-1 IgG) in tissue [MAPLE]: D ~1e-7 cm^2/s, washout 5e-5/s; enters at
    # vessels from plasma (blood_level is set by the dosing schedule; exchange rate: assumption).
    "anti_pd1": {"units": "nM", "D_um2_per_min": 1.0e-7 * UM2_PER_CM2 * 60.0, "decay_per_min": 5.0e-5 * 60.0,
                 "vessel": {"supply_per_min": 0.01, "blood_level": 0.0}},
    # Small-molecule chemotherapy drug: tissue D not found (assumption: a tenth of oxygen's);
    # decay 0.9/d [dP06]; uptake by tumor cells: assumption; enters at vessels (rate: assumption).
    "chemo_drug": {"units": "uM", "D_um2_per_min": 1.0e4, "decay_per_min": 0.9 / 1440.0,
                   "uptake_per_min": {"tumor": 0.1}, "vessel": {"supply_per_min": 1.0, "blood_level": 0.0}},
    # Antigen / danger signal released by dying tumor cells: no source found (assumption:
    # a small protein like the generic chemokine, D 1000 um^2/min, half-life 1 h).
    "danger_signal": {"units": "au", "D_um2_per_min": 1000.0, "decay_per_min": math.log(2.0) / 60.0,
                      "secretion_per_min": {"tumor_dying": 1.0}, "secretion_saturation": 1.0},
    # VEGF-like angiogenic signal secreted by hypoxic tumor cells (vessels.angiogenesis): no source taken for its
    # values (assumption: a small protein like the generic chemokine, D 1000 um^2/min, half-life 1 h).
    "vegf": {"units": "au", "D_um2_per_min": 1000.0, "decay_per_min": math.log(2.0) / 60.0,
             "secretion_per_min": {"tumor_hypoxic": 1.0}, "secretion_saturation": 1.0},
    # Anti-VEGF antibody in tissue (drugs kind anti_vegf): an IgG, so the anti-PD-1 antibody's values (assumption).
    "anti_vegf": {"units": "nM", "D_um2_per_min": 1.0e-7 * UM2_PER_CM2 * 60.0, "decay_per_min": 5.0e-5 * 60.0,
                  "vessel": {"supply_per_min": 0.01, "blood_level": 0.0}},
}


IMMUNE_DRUG_SENSITIVITY = 0.6 / 0.9  # [dP06]: chemotherapy kills immune cells at 0.6/d, tumor cells at 0.9/d

#: Preset suppressor cell types: each legacy key of the immune section (``immune.tregs:``, ``immune.mdscs:``) declares
#: the suppressor type of that name in the table ``immune.suppressors``, before the table's own entries. Their order
#: here is their slot: slot ``k`` gives kind code ``k + 1`` and its own entry stream, and every immune timeseries
#: counts each preset type (0 where the config lacks it), so runs keep their columns whatever types they declare.
SUPPRESSOR_PRESETS: dict[str, str] = {"tregs": "treg", "mdscs": "mdsc"}
#: Readable labels of the preset suppressor types (figure legends); a type not listed is labelled by its name.
SUPPRESSOR_LABELS: dict[str, str] = {"treg": "Treg", "mdsc": "MDSC"}
