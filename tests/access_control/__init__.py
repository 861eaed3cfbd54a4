"""The access-control matrix of AC-1 and AC-2 (tests/test_access_control.py): the kinds of
caller, the table of what every operation answers each of them (expected/), and the machinery
that builds a target for every operation and calls it (matrix.py)."""
