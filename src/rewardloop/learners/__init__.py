"""See DESIGN.md: the learners layer."""
