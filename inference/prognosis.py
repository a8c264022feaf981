"""A transparent *suggested* prognosis from published thresholds. Not a trained prediction.

Rules, evaluated in this order; the first that fires decides the category:

====  ============  =========================================  ==================================
id    category      condition                                  source
====  ============  =========================================  ==================================
R1    high          well-aerated lung (%WAL) ≤ 73 %            Colombi et al., Radiology 2020
R2    high          zonal score ≥ 18 of 24                     zonal adaptation of Francone et
                                                               al., Eur Radiol 2020 (lobar score
                                                               ≥ 18 of 25 with mortality)
R3    intermediate  zonal score ≥ 8 of 24, or %WAL ≤ 85 %      L3-net Node thresholds, NOT
                                                               validated by any study
R4    low           none of the above
====  ============  =========================================  ==================================

Colombi et al. read %WAL visually and with software (−950..−700 HU); we compute it
from the HU band over the lung mask, which includes vessels. Francone et al. scored 5
lobes 0–5 (0–25); our score grades 6 zones 0–4 (0–24), so the threshold of 18 is
carried over, not re-derived. Every rule, its value and threshold, and whether it
fired, is returned, so a reader sees exactly why a category came out.
"""

from __future__ import annotations

from typing import Any

from inference.measurements import SCORE_MAX, Measurements

LABEL = "suggested — not for diagnostic use"
COLOMBI = (
    "Colombi D, et al. Well-aerated Lung on Admitting Chest CT to Predict Adverse Outcome in "
    "COVID-19 Pneumonia. Radiology 2020;296(2):E86-E96. doi:10.1148/radiol.2020201433"
)
FRANCONE = (
    "Francone M, et al. Chest CT score in COVID-19 patients: correlation with disease severity and "
    "short-term prognosis. Eur Radiol 2020;30(12):6808-6817. doi:10.1007/s00330-020-07033-y"
)
LANZA = (
    "Lanza E, et al. Quantitative chest CT analysis in COVID-19 to predict the need for oxygenation "
    "support and intubation. Eur Radiol 2020;30(12):6770-6778. doi:10.1007/s00330-020-07013-2"
)

WAL_HIGH_PERCENT = 73.0
SCORE_HIGH = 18
SCORE_INTERMEDIATE = 8
WAL_INTERMEDIATE_PERCENT = 85.0


def _rule(rule_id: str, category: str, fired: bool, text: str, short: str, values: dict, references: list[str]) -> dict[str, Any]:
    """One evaluated rule. ``short`` fits a DICOM CodeMeaning (64 characters)."""
    return {
        "id": rule_id,
        "category": category,
        "fired": bool(fired),
        "condition": text,
        "short": short[:64],
        "values": values,
        "references": references,
    }


def suggest(measurements: Measurements) -> dict[str, Any]:
    """The suggested risk category with every rule evaluated.

    Returns ``category`` (low / intermediate / high), ``decisive_rule`` (the first
    rule that fired), ``rule`` (its condition, in words, with the values), ``rules``
    (all four), ``thresholds``, ``references``, ``label`` and ``method``.
    """
    wal = float(measurements["lungs"]["well_aerated_percent"])
    score = int(measurements["total_score"])
    rules = [
        _rule(
            "R1-WAL73", "high", wal <= WAL_HIGH_PERCENT,
            f"well-aerated lung {wal:.1f} % <= {WAL_HIGH_PERCENT:g} %",
            f"Well-aerated lung <= {WAL_HIGH_PERCENT:g} % (Colombi 2020)",
            {"well_aerated_percent": wal, "threshold": WAL_HIGH_PERCENT}, [COLOMBI, LANZA],
        ),
        _rule(
            "R2-SCORE18", "high", score >= SCORE_HIGH,
            f"zonal score {score}/{SCORE_MAX} >= {SCORE_HIGH} (zonal adaptation of Francone's lobar score >= 18/25)",
            f"Zonal score >= {SCORE_HIGH}/{SCORE_MAX} (adapted from Francone 2020)",
            {"total_score": score, "threshold": SCORE_HIGH}, [FRANCONE],
        ),
        _rule(
            "R3-INTERMEDIATE", "intermediate", score >= SCORE_INTERMEDIATE or wal <= WAL_INTERMEDIATE_PERCENT,
            f"zonal score {score}/{SCORE_MAX} >= {SCORE_INTERMEDIATE} or well-aerated lung {wal:.1f} % <= "
            f"{WAL_INTERMEDIATE_PERCENT:g} % (L3-net Node thresholds, not validated)",
            f"Score >= {SCORE_INTERMEDIATE} or WAL <= {WAL_INTERMEDIATE_PERCENT:g} % (not validated)",
            {"total_score": score, "score_threshold": SCORE_INTERMEDIATE, "well_aerated_percent": wal,
             "wal_threshold": WAL_INTERMEDIATE_PERCENT}, [COLOMBI, FRANCONE],
        ),
        _rule(
            "R4-LOW", "low", True,
            f"well-aerated lung {wal:.1f} % > {WAL_INTERMEDIATE_PERCENT:g} % and zonal score {score}/{SCORE_MAX} < {SCORE_INTERMEDIATE}",
            "No rule for higher risk fired",
            {"total_score": score, "well_aerated_percent": wal}, [COLOMBI, FRANCONE],
        ),
    ]
    decisive = next(rule for rule in rules if rule["fired"])
    return {
        "category": decisive["category"],
        "label": LABEL,
        "rule": decisive["condition"],
        "decisive_rule": decisive,
        "rules": rules,
        "thresholds": {
            "well_aerated_high_percent": WAL_HIGH_PERCENT,
            "zonal_score_high": SCORE_HIGH,
            "zonal_score_intermediate": SCORE_INTERMEDIATE,
            "well_aerated_intermediate_percent": WAL_INTERMEDIATE_PERCENT,
            "zonal_score_max": SCORE_MAX,
        },
        "references": decisive["references"],
        "method": (
            "rule-based, first rule that fires wins; not a trained prediction. The zonal score (6 zones, 0-4 each, "
            "0-24) adapts a lobar score; %WAL is the -950..-700 HU fraction of the lung mask"
        ),
    }
