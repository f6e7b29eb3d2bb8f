"""Evaluation you can trust: metrics, calibration, bootstrap intervals, leak-aware reports, model comparison.

Modules: `metrics` (pure functions, scikit-learn), `calibration` (temperature, ECE), `bootstrap`
(percentile CIs), `plots` (Figures, never files), `report` (report.html), `evaluate`
(`braintumor evaluate`), `compare` (`braintumor compare`). Nothing is imported here, so
`import braintumor.evaluation` stays cheap.
"""
