"""Sovereign."""
