"""The attack drill of bench/attack.py, by concern (see that file's docstring)."""
