"""Use cases: one service per workflow step or API verb; they depend on ports only."""
