"""orgvault: backup, restore and archive for Salesforce, in the customer's own account."""

__version__ = "0.1.0"
