"""See DESIGN.md: the service layer."""
