"""stack-builder: build, test, publish and promote a stack of Docker images."""
