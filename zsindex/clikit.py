"""Pieces shared by the command modules: error mapping, model and index options, progress bars."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from . import config
from .errors import UsageError, ZsindexError


class ZsGroup(click.Group):
    """Turns library errors into click errors: usage problems exit 2, others exit 1.

    An OSError that escaped the library (a file system fault it did not
    foresee) is shown as a message naming the file, not as a traceback.
    """

    def invoke(self, ctx: click.Context) -> Any:
        import warnings

        # Pillow warns about odd EXIF and palettes in files it still decodes; the run reports real errors itself.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        from PIL import Image

        # The CLI owns its process: --max-megapixels is the bomb guard here, not Pillow's global one.
        Image.MAX_IMAGE_PIXELS = None
        try:
            return super().invoke(ctx)
        except UsageError as e:
            raise click.UsageError(str(e), ctx) from None
        except ZsindexError as e:
            raise click.ClickException(str(e)) from None
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""
            raise click.ClickException(f"{where}{e.strerror or e}") from None


class ModelChoice:
    """The --model/--pretrained/--device flags as given (None: environment, index or default decides)."""

    def __init__(self, model: str | None, pretrained: str | None, device: str | None) -> None:
        self.model, self.pretrained, self.device = model, pretrained, device

    def load(self) -> Any:
        from .embedder import load_embedder

        return load_embedder(self.model, self.pretrained, self.device)


def model_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--model / --pretrained / --device, shared by every command that embeds."""

    @click.option(
        "--model", "-m", default=None,
        help=f"open_clip architecture, hf-hub:org/name, a model folder, arch.json (with --pretrained FILE), "
        f"or 'demo' (the shipped tiny model). Env {config.ENV_MODEL}; an index remembers its model  "
        f"[default: {config.DEFAULT_MODEL}]",
    )
    @click.option(
        "--pretrained", default=None,
        help=f"Pretrained tag or checkpoint file. Env {config.ENV_PRETRAINED}  "
        f"[default: {config.DEFAULT_PRETRAINED} for {config.DEFAULT_MODEL}]",
    )
    @click.option("--device", default=None, help=f"cuda, mps, cpu or auto. Env {config.ENV_DEVICE}  [default: auto]")
    @functools.wraps(func)
    def wrapper(*args: Any, model: str | None, pretrained: str | None, device: str | None, **kwargs: Any) -> Any:
        return func(*args, choice=ModelChoice(model, pretrained, device), **kwargs)

    return wrapper


def index_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--index", "index_dir", type=click.Path(file_okay=False, path_type=Path), envvar=config.ENV_INDEX,
        show_envvar=True, help=f"Index folder  [default: {config.default_index_dir()}]",
    )(func)


def open_library(index_dir: Path | None, choice: ModelChoice | None = None, create: bool = False) -> Any:
    from .library import Library

    if choice is None:
        return Library(index_dir, create=create)
    return Library(index_dir, model=choice.model, pretrained=choice.pretrained, device=choice.device, create=create)


class ProgressBar:
    """A tqdm progress bar on stderr driven by the library's (stage, done, total) callback."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Any = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.quiet or total == 0:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=stage, unit="img", dynamic_ncols=True, leave=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def label_set_from(labels: str | None, labels_file: Path | None, templates: tuple[str, ...]) -> Any:
    from . import labels as labels_mod
    from .library import as_label_set

    if bool(labels) == bool(labels_file):
        raise UsageError("give labels with exactly one of --labels 'a,b,c' or --labels-file FILE")
    if labels_file:
        return as_label_set(labels_mod.LabelSet(labels_mod.parse_label_file(labels_file)), templates)
    return as_label_set(labels or "", templates)
