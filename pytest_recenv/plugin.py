"""pytest hooks of pytest-recenv, in lifecycle order. Glue only: the work lives elsewhere."""

from __future__ import annotations

import pytest

MARKERS = {
    "cuda": "cuda(min_devices=1, min_memory=None, min_capability=None): skip unless enough CUDA "
    'devices are usable. Example: @pytest.mark.cuda(min_memory="16GiB")',
    "multi_gpu": "multi_gpu(n): sugar for cuda(min_devices=n). Example: @pytest.mark.multi_gpu(2)",
    "faiss": "faiss: skip unless faiss imports and works. Example: @pytest.mark.faiss",
    "faiss_gpu": "faiss_gpu(min_devices=1): skip unless faiss is a CUDA build with GPUs visible. "
    "Example: @pytest.mark.faiss_gpu",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, help_line in MARKERS.items():
        config.addinivalue_line("markers", f"{name}{help_line[len(name):]}")


# Environment hooks and fixtures live in their own plugin module, registered with this one.
pytest_plugins = ["pytest_recenv.envplugin"]
