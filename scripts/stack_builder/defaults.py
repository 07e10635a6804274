"""Names the command line shows before any task runs: kept apart, with no imports, so listing tasks stays cheap."""

REGISTRY_VAR = "STACK_REGISTRY"
DEFAULT_REGISTRY = "127.0.0.1:5000"
