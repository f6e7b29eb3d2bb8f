"""braintumor.models."""
