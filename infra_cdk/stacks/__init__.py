"""Thin stacks composing the capability constructs."""
