"""Export passes: each one small transformation from a program to a program."""
