"""Placement service: children and their placements outside the home."""
