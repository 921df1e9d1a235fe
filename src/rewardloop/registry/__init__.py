"""See DESIGN.md: the registry layer."""
