"""Inventory lookups over HTTP."""
