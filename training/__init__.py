"""Retraining the prompt-injection classifier: its data (public, generated, everyday traffic) and the run."""
