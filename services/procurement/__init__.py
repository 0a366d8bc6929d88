"""Procurement service: routes by value, tenders, confidential bids, evaluation and award."""
