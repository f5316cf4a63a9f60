"""Small protocols written against labkit's node model, used by the search tests.

Nothing here is random: every choice a protocol makes is a constructor
parameter, so all non-determinism comes from the search (message order,
duplication, loss and timer order).
"""
