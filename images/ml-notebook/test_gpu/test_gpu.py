"""GPU tests: run by `doit test_gpu` in containers that request every GPU of the engine's host."""


def test_gpu_is_visible(container):
    code, output = container.run(["nvidia-smi", "-L"], entrypoint=[])
    assert code == 0, output
    assert "GPU 0" in output


def test_driver_library_reaches_the_image(container):
    # The NVIDIA runtime injects the driver's libcuda; the image's Python must be able to load it.
    script = "import ctypes; ctypes.CDLL('libcuda.so.1'); print('libcuda loaded')"
    code, output = container.run(["python", "-c", script], entrypoint=[])
    assert code == 0, output
    assert "libcuda loaded" in output
