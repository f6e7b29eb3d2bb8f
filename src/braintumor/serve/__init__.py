"""braintumor.serve."""
