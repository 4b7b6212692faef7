"""Build scripts for the Lambda layers and function code, as CDK local bundlers (no Docker)."""
