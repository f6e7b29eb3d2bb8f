"""braintumor.inference."""
