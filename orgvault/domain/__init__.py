"""Pure domain: values and rules. No I/O, no SDKs, no environment."""
