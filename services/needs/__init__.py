"""Needs service: the register of partner needs, cross-partner matching, option appraisal."""
