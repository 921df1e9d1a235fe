"""The closed-loop demo: simulated production (users, raters, a reviewer) around the real loop.

Not part of the production path: nothing in ``loop``, ``service`` or below imports it.
"""
