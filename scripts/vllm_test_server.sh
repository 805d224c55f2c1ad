#!/usr/bin/env bash
# Serve the tiny random Llama of the test suite on a real vLLM OpenAI-compatible server, for poking at the LLM
# planner by hand:
#   scripts/vllm_test_server.sh [PORT]          (default 8016; Ctrl-C or SIGTERM stops it)
#   scenewright plan "a cat and a dog" --planner vllm-server --vllm-url http://127.0.0.1:8016/v1 --llm tiny-llama
# The model is built into tests/.cache/tiny-llama-v1 on first use; logs go to tests/.cache/vllm-work/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
exec env PYTHONPATH=. "$PY" -m tests.llm_fixtures serve tests/.cache/tiny-llama-v1 --port "${1:-8016}"
