"""Detector backends: each wraps one library behind base.Detector."""
