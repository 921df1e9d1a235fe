"""See DESIGN.md: the evaluation layer."""
