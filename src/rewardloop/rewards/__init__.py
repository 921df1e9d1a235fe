"""See DESIGN.md: the rewards layer."""
