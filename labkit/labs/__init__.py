"""Labs built on labkit: each provides its messages and its public tests."""
