"""Names the command line shows before any task runs: kept apart, with no imports, so listing tasks stays cheap."""

REGISTRY_VAR = "STACK_REGISTRY"
DEFAULT_REGISTRY = "127.0.0.1:5000"

# The variables that hold the process's secrets (``secrets`` and ``registry.credentials`` use them); here so that
# a command can tell without importing those whether it has any secret to hand over or to receive.
USER_VAR = "STACK_REGISTRY_USER"
PASSWORD_VAR = "STACK_REGISTRY_PASSWORD"
SIGNING_PASSWORD_VAR = "COSIGN_PASSWORD"  # the password of the cosign key in STACK_SIGNING_KEY
SECRET_VARS = (PASSWORD_VAR, SIGNING_PASSWORD_VAR)
FD_VAR = "STACK_CREDENTIALS_FD"  # the pipe the credentials come through after `stack-builder` re-executes itself
