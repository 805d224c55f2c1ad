"""``scenewright library``: the reference-image library of RealRAG (add, list, search, remove).

The library lives in ``$SCENEWRIGHT_HOME/library`` (or ``$SCENEWRIGHT_LIBRARY``, or ``--library DIR``). Images
are embedded with the profile's embedder: CLIP image features for profiles with a ``clip`` model, the
deterministic image-statistics embedder on the preview profile (see ``tools/retrieval.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

library_app = typer.Typer(
    name="library",
    help="Reference images for fine-grained or novel objects (RealRAG): add, list, search, remove.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
_err = Console(stderr=True)

LibraryOpt = typer.Option(None, "--library", help="Library folder (default $SCENEWRIGHT_HOME/library).")
ProfileOpt = typer.Option("preview", "--profile", "-p", help="Profile whose embedder indexes and searches.")
ConfigOpt = typer.Option(None, "--config", help="Extra profiles TOML file.")
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")


def _fail(message: str) -> None:
    _err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _open(library: Path | None, profile: str, config: Path | None, must_exist: bool = False):
    from agent.profiles import ProfileError, get_profile
    from tools.retrieval import Library, LibraryError, default_library_dir, embedder_for

    folder = library or default_library_dir()
    if must_exist and not Library.exists(folder):
        _fail(f"no library at {folder}; add images with 'scenewright library add DIR'")
    try:
        return Library(folder, embedder_for(get_profile(profile, config)))
    except (ProfileError, LibraryError) as e:
        _fail(str(e))
    except OSError as e:
        _fail(f"cannot open the library at {folder}: {e.strerror or e}")


@library_app.command("add")
def add(
    folder: Path = typer.Argument(..., help="A folder of images (or one image); captions from captions.json, NAME.txt or NAME.json."),
    library: Path | None = LibraryOpt, profile: str = ProfileOpt, config: Path | None = ConfigOpt,
    as_json: bool = JsonOpt,
):
    """Index images; the same image twice is a no-op, an unreadable one is reported and skipped."""
    from tools.retrieval import LibraryError

    if not folder.exists():
        _fail(f"{folder} does not exist")
    lib = _open(library, profile, config)
    try:
        report = lib.add(folder)
    except LibraryError as e:
        _fail(str(e))
    except Exception as e:  # noqa: BLE001 - a model that cannot load, a full disk: one line, not a traceback
        _fail(f"indexing failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    for line in report.skipped:
        _err.print(f"skipped {escape(line)}", highlight=False, soft_wrap=True)
    if as_json:
        typer.echo(json.dumps({"added": [e.to_dict() for e in report.added], "duplicates": report.duplicates,
                               "skipped": report.skipped, "seconds": round(report.seconds, 3), "total": len(lib)}))
    else:
        typer.echo(f"added {len(report.added)}, already there {len(report.duplicates)}, skipped {len(report.skipped)}"
                   f" ({report.seconds:.2f} s); {len(lib)} images in {lib.folder}")


@library_app.command("list")
def list_(library: Path | None = LibraryOpt, profile: str = ProfileOpt, config: Path | None = ConfigOpt,
          as_json: bool = JsonOpt):
    """List the indexed images."""
    lib = _open(library, profile, config, must_exist=True)
    entries = lib.entries()
    if as_json:
        typer.echo(json.dumps([e.to_dict() for e in entries]))
        return
    for e in entries:
        typer.echo(f"{e.id:>5}  {e.sha256[:12]}  {e.width}x{e.height}  {e.caption[:60]}")
    typer.echo(f"{len(entries)} images ({lib.embedder.id}, {lib.index.backend})")


@library_app.command("search")
def search(
    query: str = typer.Argument(..., help="What to look for, e.g. 'a Tesla Cybertruck'."),
    k: int = typer.Option(5, "-k", min=1, max=100), library: Path | None = LibraryOpt,
    profile: str = ProfileOpt, config: Path | None = ConfigOpt, as_json: bool = JsonOpt,
):
    """The images most relevant to a text query."""
    if not query.strip():
        _fail("the query is empty")
    from tools.retrieval import LibraryError

    lib = _open(library, profile, config, must_exist=True)
    try:
        ranking = lib.ranking
        hits = lib.search(query, k)
    except LibraryError as e:
        _fail(str(e))
    if as_json:
        typer.echo(json.dumps([{**e.to_dict(), "score": round(s, 4), "ranking": ranking} for e, s in hits]))
        return
    for e, s in hits:
        typer.echo(f"{s:6.3f}  {e.id:>5}  {e.caption[:60]}")
    typer.echo(f"ranking: {ranking}")


@library_app.command("train")
def train(
    library: Path | None = LibraryOpt, profile: str = ProfileOpt, config: Path | None = ConfigOpt,
    epochs: int = typer.Option(50, "--epochs", min=1, max=10_000), seed: int = typer.Option(0, "--seed", min=0),
    reflect: str = typer.Option("generated", "--reflect",
                                help="Self-reflective negatives: generated | nearest | both | none (plain contrastive)."),
    weight: float = typer.Option(2.0, "--weight", min=0.01, max=100.0, help="Weight of the reflective negatives."),
    per_caption: int = typer.Option(1, "--per-caption", min=1, max=8, help="Generated images per caption."),
    as_json: bool = JsonOpt,
):
    """Train RealRAG's reflective retriever (a projection head over frozen CLIP) on the library's pairs."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from agent.api import Engine
    from tools.retriever_head import REFLECT_MODES, HeadError
    from tools.retrieval import LibraryError

    if reflect not in REFLECT_MODES:
        _fail(f"--reflect must be one of {', '.join(REFLECT_MODES)}, not '{reflect}'")
    lib = _open(library, profile, config, must_exist=True)
    from agent.api import build_registry

    engine = Engine(lib_profile(profile, config))
    engine._registry = build_registry(engine.profile)  # the generator only: a stale head here is being replaced
    from agent.library_train import train_library

    with Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[loss]}"),
                  console=_err, transient=True, disable=as_json) as bar:
        task = bar.add_task("train", total=epochs, loss="")
        try:
            meta = train_library(engine, lib, epochs=epochs, seed=seed, reflect=reflect, weight=weight,
                                 per_caption=per_caption,
                                 on_epoch=lambda ep, loss: bar.update(task, completed=ep, loss=f"loss {loss:.4f}"))
        except (ValueError, HeadError, LibraryError) as e:
            _fail(str(e))
        except Exception as e:  # noqa: BLE001 - a model that cannot load: one line, not a traceback
            _fail(f"training failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    if as_json:
        typer.echo(json.dumps(meta))
        return
    m = meta["metrics"]
    typer.echo(f"trained head {meta['sha256'][:12]} on {meta['pairs']} pairs ({meta['reflect']} negatives,"
               f" seed {seed}, {epochs} epochs): loss {m['loss_initial']:.4f} -> {m['loss_final']:.4f},"
               f" train recall@1 {m['recall@1_frozen']:.2f} (frozen CLIP) -> {m['recall@1_head']:.2f}; saved in"
               f" {lib.folder}")


def lib_profile(profile: str, config: Path | None):
    from agent.profiles import get_profile

    return get_profile(profile, config)


@library_app.command("remove")
def remove(
    key: str = typer.Argument(..., help="A catalogue id, a sha256 prefix (6+ hex) or the source path."),
    library: Path | None = LibraryOpt, profile: str = ProfileOpt, config: Path | None = ConfigOpt,
):
    """Remove images from the library."""
    from tools.retrieval import LibraryError

    lib = _open(library, profile, config, must_exist=True)
    try:
        gone = lib.remove(key)
    except LibraryError as e:
        _fail(str(e))
    typer.echo(f"removed {len(gone)}; {len(lib)} images left")
