"""One construct per capability. Each takes what it depends on as constructor arguments."""
