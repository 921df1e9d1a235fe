"""Training algorithms: each takes logged data and returns a fitted policy (DESIGN.md, STYLE.md)."""
