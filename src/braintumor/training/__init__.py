"""braintumor.training."""
