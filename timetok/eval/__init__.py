"""Metrics, evaluation protocols, reports and plots."""
