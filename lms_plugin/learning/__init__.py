"""Learner experience: lessons, progress, completions, the learner home."""
