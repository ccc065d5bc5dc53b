"""Governance that acts: kill switches and the automatic policies that trip them."""
