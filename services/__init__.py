"""The InstantMentor processes: one gateway and four services."""
