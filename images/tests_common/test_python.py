"""Checks every image of the stack must pass."""


def test_python_runs(container):
    code, output = container.run(["python", "-c", "import sys; print(sys.version_info[:2])"], entrypoint=[])
    assert code == 0, output
    assert output.strip().startswith("(3, ")


def test_runs_as_unprivileged_user(container):
    code, output = container.run(["id", "-u"], entrypoint=[])
    assert code == 0, output
    assert output.strip() == "1000"


def test_carries_oci_labels(docker_client, image_ref):
    labels = docker_client.images.get(image_ref).labels
    for key in ("org.opencontainers.image.revision", "org.opencontainers.image.created",
                "org.opencontainers.image.version"):
        assert labels.get(key), f"label {key} is missing"
