"""Detection: anomaly rules, their conditions and the detectors that evaluate them."""
