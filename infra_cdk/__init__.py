"""The orgvault CDK app: one construct per capability, composed by a thin stack (see ``app.py``)."""
