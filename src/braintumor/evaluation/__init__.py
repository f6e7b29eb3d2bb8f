"""braintumor.evaluation."""
