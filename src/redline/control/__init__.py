"""Governance that acts: kill switches, the automatic policies that trip them, and budgets."""
