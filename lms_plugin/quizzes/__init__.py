"""Quiz engine: attempts, drawing questions, grading exactly once."""
