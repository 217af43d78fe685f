"""Deciding an admission: request flow, per-image evaluation, outcomes, memos, the decision cache."""
