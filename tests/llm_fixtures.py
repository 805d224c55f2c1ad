"""A tiny random Llama + a real vLLM OpenAI-compatible server, for the LLM planner tests. No downloads.

``build_tiny_llama(dir)`` trains a byte-level BPE tokenizer locally (Python stdlib sources + planner-shaped JSON
and English lines), gives it a ChatML-like chat template, and saves a 2-layer random ``LlamaForCausalLM`` with
``head_dim=32`` (vLLM's CPU attention rejects head sizes below 32: the server gets healthy, then dies on the first
request) and a 4096-token context (the planner's system prompt with its in-context examples is ~1.5k tokens).
vLLM's CPU build needs a model it can serve from a local folder with no Hub access: a config, safetensors
weights, a ``tokenizer.json`` and a chat template, with sizes its CPU kernels accept (the head size above).

``VLLMServer`` starts ``python -m vllm.entrypoints.openai.api_server`` on 127.0.0.1 with the flags the notes
recommend (``--enforce-eager``, server-side ``disable_any_whitespace`` with the xgrammar backend), waits for
``/health`` *and* one real completion, and stops the process group by PID.

``local_plan_many`` plans a batch with the in-process ``vllm.LLM`` client; the tests run it in a child process
(``local-plan``), since vLLM spawns engine processes and keeps process-wide state.

By hand (from the repository root, ``PYTHONPATH=.``)::

    python -m tests.llm_fixtures build DIR              # build the model
    python -m tests.llm_fixtures serve DIR [--port N]   # build if needed, serve until Ctrl-C / SIGTERM
    python -m tests.llm_fixtures local-plan DIR         # in-process vLLM batch planning, prints a JSON result
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

SERVED_NAME = "tiny-llama"  # --served-model-name: recorded requests do not depend on the temp folder
MAX_MODEL_LEN = 4096
_DONE = ".built"
RESULT_PREFIX = "LOCAL_PLAN_RESULT "

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def vllm_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def _training_texts():
    stdlib = sysconfig.get_paths()["stdlib"]
    for f in sorted(glob.glob(os.path.join(stdlib, "*.py")))[:200]:
        with open(f, encoding="utf-8", errors="ignore") as fh:
            yield fh.read()
    words = ["cat", "dog", "tree", "house", "car", "sky", "lamp", "table", "person", "sign", "apple", "bird"]
    for i in range(300):
        a, b = words[i % len(words)], words[(i * 5 + 3) % len(words)]
        yield json.dumps(
            {
                "objects": [
                    {"name": f"a {a}", "box": [0.1, 0.25, 0.5, 0.875]},
                    {"name": b, "box": [0.5, 0.2, 0.9, 0.6]},
                ],
                "texts": [{"content": "OPEN", "box": [0.2, 0.1, 0.4, 0.2]}],
                "background": f"a quiet street with a {b}",
                "style": "photo",
                "negative_prompt": "blurry",
            },
            separators=(",", ":"),
        )
        yield f"A realistic photo of a {a} next to a {b}. The {a} is on the left and the {b} is on the right."


def build_tiny_llama(out: str | Path, *, max_len: int = MAX_MODEL_LEN, seed: int = 0) -> Path:
    """Build (once) the tiny Llama + tokenizer into ``out``; a marker file makes repeated calls free."""
    out = Path(out)
    if (out / _DONE).exists():
        return out
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    final, out = out, out.with_name(f"{out.name}.tmp{os.getpid()}")  # build aside, then rename: no half-built dir
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    specials = ["<|bos|>", "<|eos|>", "<|pad|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1536,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    tok.train_from_iterator(_training_texts(), trainer=trainer)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|bos|>",
        eos_token="<|eos|>",
        pad_token="<|pad|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        model_max_length=max_len,
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(hf_tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        head_dim=32,  # >= 32: vLLM's CPU attention has no kernel for 16
        max_position_embeddings=max_len,
        bos_token_id=hf_tok.bos_token_id,
        eos_token_id=[hf_tok.eos_token_id, hf_tok.convert_tokens_to_ids("<|im_end|>")],
        pad_token_id=hf_tok.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg)
    model.generation_config.bos_token_id = hf_tok.bos_token_id
    model.generation_config.eos_token_id = cfg.eos_token_id
    model.generation_config.pad_token_id = hf_tok.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    hf_tok.save_pretrained(out)
    (out / _DONE).write_text("ok\n")
    try:
        os.replace(out, final)
    except OSError:  # another process finished first
        shutil.rmtree(out, ignore_errors=True)
        if not (final / _DONE).exists():
            raise
    return final


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(work: Path) -> dict[str, str]:
    """Environment for a vLLM process: offline, loopback only, caches and IPC sockets under ``work``."""
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        VLLM_CPU_KVCACHE_SPACE="1",
        VLLM_NO_USAGE_STATS="1",
        DO_NOT_TRACK="1",
        VLLM_HOST_IP="127.0.0.1",
        VLLM_CACHE_ROOT=str(work / "cache" / "vllm"),
        TORCHINDUCTOR_CACHE_DIR=str(work / "cache" / "inductor"),
        TMPDIR=str(work / "tmp"),
    )
    for key in ("VLLM_CACHE_ROOT", "TORCHINDUCTOR_CACHE_DIR", "TMPDIR"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    return env


class VLLMServer:
    """A real ``vllm`` OpenAI-compatible server on 127.0.0.1, started and stopped by PID."""

    def __init__(self, model_dir: str | Path, work: str | Path, *, port: int | None = None, python: str | None = None):
        self.model_dir = Path(model_dir)
        self.work = Path(work)
        self.port = port or free_port()
        self.python = python or sys.executable
        self.proc: subprocess.Popen | None = None
        self.startup_s: float | None = None
        self.first_request_s: float | None = None
        self.log_path = self.work / "vllm-server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    model = SERVED_NAME

    def command(self) -> list[str]:
        return [
            self.python, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir), "--served-model-name", SERVED_NAME,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--max-model-len", str(MAX_MODEL_LEN), "--dtype", "float32", "--enforce-eager",
            "--structured-outputs-config", '{"backend":"xgrammar","disable_any_whitespace":true}',
        ]  # fmt: skip

    def start(self, timeout_s: float = 300.0) -> VLLMServer:
        import httpx

        self.work.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        with open(self.log_path, "wb") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, env=server_env(self.work), start_new_session=True
            )
        base = f"http://127.0.0.1:{self.port}"
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"vLLM server exited with {self.proc.returncode}; log:\n{self.log_tail()}")
                if time.monotonic() - t0 > timeout_s:
                    raise RuntimeError(f"vLLM server not healthy after {timeout_s:.0f}s; log:\n{self.log_tail()}")
                try:
                    if httpx.get(base + "/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            self.startup_s = time.monotonic() - t0
            # /health alone is not enough (an unsupported head size gets healthy, then dies): one real request.
            t1 = time.monotonic()
            r = httpx.post(
                self.url + "/chat/completions",
                json={"model": SERVED_NAME, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
                timeout=120,
            )
            if r.status_code != 200:
                raise RuntimeError(f"vLLM server failed its first request: HTTP {r.status_code} {r.text[:300]}")
            self.first_request_s = time.monotonic() - t1
        except BaseException:
            self.stop()
            raise
        return self

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float = 30.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        # The server spawns EngineCore and a worker; they share its session (start_new_session), so signal the group.
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def local_plan_many(model_dir: Path, work: Path, n_prompts: int = 6) -> dict:
    """In-process ``vllm.LLM`` batch planning (run in its own process: vLLM spawns engine processes and keeps
    process-wide state). Returns outcomes and timings as JSON-able data."""
    os.environ.update(server_env(work))
    t0 = time.monotonic()
    from planners.llm_client import VLLMLocalClient
    from planners.llm_planner import LLMPlanner

    client = VLLMLocalClient(str(model_dir), dtype="float32", max_model_len=MAX_MODEL_LEN, enforce_eager=True)
    planner = LLMPlanner(client, limits=tiny_limits(), max_tokens=256, repairs=2)
    client.llm  # noqa: B018  (load now, to time it apart from planning)
    t1 = time.monotonic()
    prompts = [f"a cat and a dog in park number {i}" for i in range(n_prompts)]
    results = planner.plan_many(prompts, seeds=list(range(n_prompts)))
    t2 = time.monotonic()
    single = planner.plan("a red car next to a tree", seed=0)
    t3 = time.monotonic()
    return {
        "outcomes": [r.to_json() if hasattr(r, "to_json") else f"{type(r).__name__}: {r}" for r in results],
        "ok": [not isinstance(r, Exception) for r in results],
        "batches": planner.stats,
        "single_objects": len(single.objects),
        "load_s": round(t1 - t0, 2),
        "plan_many_s": round(t2 - t1, 2),
        "plan_one_s": round(t3 - t2, 2),
    }


def tiny_limits():
    """Schema limits a random model can finish well within 256 tokens: short [a-z ] strings, at most 2 objects."""
    from planners.llm_planner import SchemaLimits

    return SchemaLimits(
        max_objects=2, max_texts=1, name_chars=12, text_chars=8, background_chars=16, style_chars=8,
        negative_chars=8, description_chars=24, char_class="[a-z ]", first_char_class="[a-z]",
    )  # fmt: skip


def _main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m tests.llm_fixtures")
    ap.add_argument("action", choices=["build", "serve", "local-plan"])
    ap.add_argument("dir", help="model folder (built if missing)")
    ap.add_argument("--port", type=int, default=None)
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    model_dir = build_tiny_llama(args.dir)
    print(f"tiny llama at {model_dir} ({time.monotonic() - t0:.1f}s)", flush=True)
    if args.action == "build":
        return 0
    if args.action == "local-plan":
        result = local_plan_many(model_dir, Path(args.dir).resolve().parent / "vllm-local-work")
        print(RESULT_PREFIX + json.dumps(result), flush=True)  # vLLM logs to stdout too: mark our line
        return 0
    server = VLLMServer(model_dir, Path(args.dir).resolve().parent / "vllm-work", port=args.port)

    def _stop(signum, frame):  # SIGTERM, and SIGINT even when a background shell ignores it
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server.start()
    print(
        f"serving model '{SERVED_NAME}' at {server.url} (healthy after {server.startup_s:.1f}s); Ctrl-C stops",
        flush=True,
    )
    try:
        while server.proc and server.proc.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
