"""Evaluation you can trust: metrics, calibration, bootstrap intervals, leak-aware reports, model comparison.

Modules (the metric functions themselves are in `braintumor.metrics`): `bootstrap`
(percentile CIs), `plots` (Figures, never files), `report` (report.html), `evaluate`
(`braintumor evaluate`), `compare` (`braintumor compare`). Nothing is imported here, so
`import braintumor.evaluation` stays cheap.
"""
