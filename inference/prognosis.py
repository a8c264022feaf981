"""A transparent *suggested* prognosis from documented rules; never a trained prediction.

Rules, checked in order, the first that fires wins:

1. high: well-aerated lung ≤ 73 % of lung volume. Colombi et al., Radiology 2020:
   %WAL ≤ 73 % on admission CT was associated with ICU admission or death.
2. high: zonal severity score ≥ 18 of 24. This adapts Francone et al. (Eur Radiol
   2020), where a lobar CT score ≥ 18 of 25 was associated with mortality, to our six
   zones.
3. intermediate: zonal severity score ≥ 8 of 24, or %WAL ≤ 85 %. These are our
   thresholds for "worth a closer look"; no study has validated them.
4. low: none of the above.
"""

from __future__ import annotations

LABEL = "suggested — not for diagnostic use"
COLOMBI = "Colombi D, et al. Well-aerated Lung on Admitting Chest CT to Predict Adverse Outcome in COVID-19 Pneumonia. Radiology 2020;296:E86-E96."
FRANCONE = "Francone M, et al. Chest CT score in COVID-19 patients: correlation with disease severity and short-term prognosis. Eur Radiol 2020;30:6808-6817."
LANZA = "Lanza E, et al. Quantitative chest CT analysis in COVID-19 to predict the need for oxygenation support and intubation. Eur Radiol 2020;30:6770-6778."

WAL_HIGH = 73.0
SCORE_HIGH = 18
SCORE_INTERMEDIATE = 8
WAL_INTERMEDIATE = 85.0


def suggest(measurements: dict) -> dict:
    """Risk category, the rule that fired, every threshold and the references."""
    wal = measurements["lungs"]["well_aerated_percent"]
    score = measurements["total_score"]
    if wal <= WAL_HIGH:
        category, rule, refs = "high", f"well-aerated lung {wal:.1f} % ≤ {WAL_HIGH:.0f} %", [COLOMBI, LANZA]
    elif score >= SCORE_HIGH:
        category, rule, refs = "high", f"zonal score {score}/24 ≥ {SCORE_HIGH} (zonal adaptation of Francone)", [FRANCONE]
    elif score >= SCORE_INTERMEDIATE or wal <= WAL_INTERMEDIATE:
        category = "intermediate"
        rule = f"zonal score {score}/24 ≥ {SCORE_INTERMEDIATE} or well-aerated lung {wal:.1f} % ≤ {WAL_INTERMEDIATE:.0f} % (L3-net thresholds, not validated)"
        refs = [COLOMBI, FRANCONE]
    else:
        category = "low"
        rule = f"well-aerated lung {wal:.1f} % > {WAL_INTERMEDIATE:.0f} % and zonal score {score}/24 < {SCORE_INTERMEDIATE}"
        refs = [COLOMBI, FRANCONE]
    return {
        "category": category,
        "rule": rule,
        "thresholds": {
            "well_aerated_high_percent": WAL_HIGH,
            "zonal_score_high": SCORE_HIGH,
            "zonal_score_intermediate": SCORE_INTERMEDIATE,
            "well_aerated_intermediate_percent": WAL_INTERMEDIATE,
        },
        "references": refs,
        "label": LABEL,
        "method": "rule-based; the zonal score (0-24, six zones) is an adaptation of a lobar score",
    }
