"""The base notebook serves JupyterLab."""
import time

import requests


def test_jupyterlab_answers(container, free_port):
    server = container.start(
        ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser", "--IdentityProvider.token=testtoken"],
        ports={"8888/tcp": ("127.0.0.1", free_port)},
        entrypoint=["tini", "--"],  # descendants may set their own entrypoint (a model image does)
    )
    deadline = time.monotonic() + 60
    last = None
    while time.monotonic() < deadline:
        try:
            response = requests.get(f"http://127.0.0.1:{free_port}/api/status",
                                    headers={"Authorization": "token testtoken"}, timeout=2)
            if response.status_code == 200:
                break
            last = response.status_code
        except requests.exceptions.ConnectionError as exc:
            last = exc
        server.reload()
        assert server.status in ("created", "running"), server.logs().decode()[-2000:]
        time.sleep(0.5)
    else:
        raise AssertionError(f"JupyterLab did not answer within 60 s: {last}\n{server.logs().decode()[-2000:]}")
    assert "started" in response.json()


def test_jupyter_lab_version_pinned(container):
    code, output = container.run(["jupyter", "lab", "--version"], entrypoint=[])
    assert code == 0, output
    assert output.strip().startswith("4."), output
