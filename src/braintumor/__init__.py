"""braintumor: brain-tumour MRI classification with honest evaluation.

Research software, not a medical device: never use its output for diagnosis.
"""

__version__ = "0.1.0"

DISCLAIMER = "Research use only. Not a medical device; not for diagnosis or treatment decisions."
