"""Writes of the reward-model app: training runs and evaluations (runs.py), scoring and best-of-K
previews (rewards.py)."""
