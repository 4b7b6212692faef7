"""The orgvault HTTP API: one Powertools resolver served by API Gateway + Lambda in the cloud and by
``orgvault serve`` locally (see :mod:`orgvault.api.app`)."""
