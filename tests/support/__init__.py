"""Test support shared by the tiers: the in-memory store (functional tier)."""
