"""Adapters: the only modules that touch the outside world (filesystem, SQLite, AWS SDKs, Salesforce).

Local mode: :mod:`.local_store` (FilesystemObjectStore), :mod:`.local_catalog` (SqliteCatalog),
:mod:`.local_keys` (LocalKeyProvider), :mod:`.local_secrets` (LocalSecretStore). AWS mode: ``aws_*``.
Each implements a Protocol in :mod:`orgvault.ports` and passes that port's suite in ``tests/contract``.
Import the submodule you need; this package imports nothing so that local mode never loads boto3.
"""
