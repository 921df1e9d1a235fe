"""See DESIGN.md: the loop layer."""
