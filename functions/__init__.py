"""Lambda entry points: each a thin parse → one service call → plain dict (see ``_runtime``)."""
