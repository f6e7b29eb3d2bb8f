"""braintumor.explain."""
