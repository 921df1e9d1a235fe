"""See DESIGN.md: the policies layer."""
