"""Checking what a run or a search produced: predicates and linearizability."""
