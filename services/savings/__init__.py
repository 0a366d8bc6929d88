"""Savings service: the running ROI projection from the event stream."""
