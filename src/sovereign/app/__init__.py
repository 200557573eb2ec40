"""Wiring: the control service, the paper campaign, the scheduler and persistence."""
