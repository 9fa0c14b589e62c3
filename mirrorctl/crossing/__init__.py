"""Crossing: what is carried over the gap and why the inside may trust it (bundle, signing, trust)."""
