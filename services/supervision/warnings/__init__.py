"""Warnings (预警): rules over open cases and their store and API. Imports nothing from cases' siblings (levels)."""
