"""Pieces shared by the command modules: the error boundary, exit codes, model and index options, progress bars.

Exit codes (the README lists them): 0 done; 1 a problem with the data or the
environment; 2 a usage error; 3 done, but some input files were skipped (see
``Partial``); 130 interrupted (Ctrl-C).

Library messages name their parameters the Python way (``like=IMAGE``,
``max_megapixels=MP``); :func:`cli_text` turns each such name into the flag of
the command being run (``--like IMAGE``), so the same error reads right from
the Python API and from the command line.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import math
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from . import config, interrupts
from .errors import UsageError, ZsindexError, rewrite_api_calls, shell_word

EXIT_PARTIAL = 3
EXIT_INTERRUPTED = interrupts.EXIT_INTERRUPTED

# Library parameter names whose command-line option has another name.
API_ALIASES = {"folder": "index_dir"}
_API_PARAM = re.compile(r"(?<![\w/.-])([a-z][a-z0-9_]*)=(True\b)?")
# Library methods that library messages name (``Library.labels_edit('animals')``) -> their command.
API_COMMANDS = {"labels_add": "labels add", "labels_edit": "labels edit", "labels_remove": "labels remove",
                "labels_show": "labels show", "tag": "tag", "untag": "untag", "ingest": "ingest",
                "rebuild": "rebuild", "forget": "forget", "errors": "errors", "status": "status"}
# ... and where the method's first argument is an option of the command, not an argument
FIRST_ARG_FLAG = {"tag": "--labels", "untag": "--labels"}


def _command_text(method: str, args: list[tuple[str, bool]]) -> str | None:
    """``Library.labels_edit('my set')`` -> ```zsindex labels edit 'my set'```: a method named in a library
    message, written as the command a CLI user runs."""
    command = API_COMMANDS.get(method)
    if command is None:
        return None
    words = [shell_word(value) if quoted else value for value, quoted in args]
    if words and method in FIRST_ARG_FLAG:  # Library.tag('pets') is `zsindex tag --labels pets`
        words.insert(0, FIRST_ARG_FLAG[method])
    return "`" + " ".join(["zsindex", command, *words]) + "`"


class Partial(click.ClickException):
    """The command did its work, but some input files were skipped: exit 3."""

    exit_code = EXIT_PARTIAL

    def show(self, file: Any = None) -> None:
        from .output import one_line

        click.echo(f"partly done: {one_line(self.format_message())}", err=True)


def option_flag(command: click.Command, name: str) -> str | None:
    """The flag (e.g. --like) of the command's option for a library parameter name (e.g. like)."""
    wanted = {name, API_ALIASES.get(name, name)}
    flag = "--" + name.rstrip("_").replace("_", "-")
    for param in command.params:
        if isinstance(param, click.Option) and (param.name in wanted or flag in param.opts):
            longs = [o for o in param.opts if o.startswith("--")]
            return (longs or param.opts)[0]
        if isinstance(param, click.Argument) and param.name in wanted:
            return param.human_readable_name  # e.g. PATHS
    return None


def cli_text(message: str, ctx: click.Context | None = None) -> str:
    """A library message with each ``name=`` that is an option of the running command written as its flag,
    and each library method it names (``Library.labels_edit('x')``) as its command (```zsindex labels edit x```)."""
    ctx = ctx or click.get_current_context(silent=True)
    if ctx is None:
        return message
    command = ctx.command

    def flag(match: re.Match[str]) -> str:
        found = option_flag(command, match.group(1)) or _flag_elsewhere(ctx, match.group(1))
        if found is None:
            return match.group(0)
        after = match.string[match.end():match.end() + 1]
        return found if match.group(2) or after in ("", " ", ",", ";", ")", ":") else found + " "

    from .output import one_line

    message = _GIVEN.sub(_shell_given, message)
    return one_line(_API_PARAM.sub(flag, rewrite_api_calls(message, _command_text)))


# A path given as a parameter's value (``folder='my\\nidx'``, errors.given): quoted, in the escaped form.
_GIVEN = re.compile(r"(?<![\w/.-])([a-z][a-z0-9_]*)='((?:[^'\\]|\\.)*)'")


def _shell_given(match: re.Match[str]) -> str:
    """A value in the escaped form as one shell word that gives the very name (``$'my\\nidx'``); a quoted value
    without escapes is already one."""
    if "\\" not in match.group(2):
        return match.group(0)
    from .output import unescape_text

    return f"{match.group(1)}={shell_word(unescape_text(match.group(2)))}"


def _flag_elsewhere(ctx: click.Context, name: str) -> str | None:
    """A parameter the running command does not take (`zsindex errors` showing why ingest skipped a file):
    the option of the command that does, ingest first."""
    root = ctx.find_root().command
    if not isinstance(root, click.Group):
        return None
    for command_name in sorted(root.commands, key=lambda c: c != "ingest"):
        found = option_flag(root.commands[command_name], name)
        if found is not None:
            return f"zsindex {command_name} {found}"
    return None


EMPTY_PATH = "is empty, and an empty path is not taken as the current folder; give a path ('.' for that folder)"


class NonEmptyPath(click.Path):
    """click.Path that refuses "" (exit 2): pathlib and os.path would read it as the current folder."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, (str, bytes)) and not value.strip():
            self.fail(EMPTY_PATH, param, ctx)
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as e:  # click writes a byte that is not UTF-8 as U+FFFD; name it as outputs do
            from .errors import path_blocker
            from .output import shown

            theirs, ours = click.utils.format_filename(value), shown(os.fsdecode(value))
            message = e.message
            blocker = path_blocker(value) if "does not exist" in message else None
            if blocker is not None:  # a file where a folder on its path should be: say so
                message = f"{message.rstrip('.')}: {blocker}."
            if theirs != ours and repr(theirs) in message:  # click writes the name with repr() (\n, but U+FFFD)
                message = message.replace(repr(theirs), f"'{ours}'")
            elif theirs != ours and theirs in message:
                message = message.replace(theirs, ours)
            if message == e.message:
                raise
            raise click.BadParameter(message, ctx, param) from None


class Glob(click.ParamType):
    """A path glob (--path, --exclude); "" is refused (exit 2) instead of filtering nothing."""

    name = "glob"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("is empty; give a glob, e.g. '*/2023/*' or 'holidays/*.jpg'", param, ctx)
        return value


GLOB = Glob()


class NonEmptyText(click.types.StringParamType):
    """A text option that refuses "" and blanks (exit 2): no text option gives an empty string a meaning of
    its own, so one never silently stands for the default (--model ''), for nothing (--pretrained ''), for
    another value (--prefix '' as none) or for no token (--token '')."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = super().convert(value, param, ctx)
        if isinstance(text, str) and not text.strip():
            self.fail("is empty; an empty text is never taken as the default or as 'none': give a value, or "
                      "leave the option out", param, ctx)
        return text


NON_EMPTY_TEXT = NonEmptyText()


def _refuse_empty_paths(command: click.Command) -> None:
    """Every path parameter of every command refuses "": each click.Path becomes a NonEmptyPath; every text
    option (not a flag) refuses "" too (NonEmptyText); and every number with a decimal point refuses nan and
    inf (click's float reads them, and a comparison with nan silently drops every result)."""
    for param in command.params:
        if isinstance(param, click.Option) and type(param.type) is click.types.StringParamType \
                and not param.is_flag:
            param.type = NON_EMPTY_TEXT
        elif isinstance(param.type, click.Path) and not isinstance(param.type, NonEmptyPath):
            param.type = copy.copy(param.type)
            param.type.__class__ = NonEmptyPath
        elif isinstance(param.type, click.types.FloatParamType) and not isinstance(param.type, _Finite):
            param.type = copy.copy(param.type)
            param.type.__class__ = (_FiniteRange if isinstance(param.type, click.FloatRange) else _FiniteFloat)


class _Finite(click.ParamType):
    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)  # type: ignore[safe-super]
        if isinstance(number, float) and not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class _FiniteFloat(_Finite, click.types.FloatParamType):
    pass


class _FiniteRange(_Finite, click.FloatRange):
    pass


def _guard(command: click.Command) -> None:
    """Map library errors inside the command's own context, so a usage error shows that command's usage.

    Also makes every path parameter refuse an empty string (see NonEmptyPath).
    """
    _refuse_empty_paths(command)  # a group's own options too (the root's --db)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _guard(sub)
        return
    callback = command.callback
    if callback is None or getattr(callback, "__zsindex_guarded__", False):
        return

    @functools.wraps(callback)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except UsageError as e:
            ctx = click.get_current_context()
            raise click.UsageError(cli_text(str(e), ctx), ctx) from None
        except ZsindexError as e:
            raise click.ClickException(cli_text(str(e))) from None

    guarded.__zsindex_guarded__ = True  # type: ignore[attr-defined]
    command.callback = guarded


class _CtrlC:
    """Ctrl-C that cannot be lost, nor turned into anything but 130.

    Python turns SIGINT into a KeyboardInterrupt at whatever bytecode runs
    next; when that is a weakref callback, a ``__del__`` or a finaliser, the
    exception is printed as "ignored" and the command carries on as if nothing
    happened, and where it cuts a module's initialisation or a transaction short
    it surfaces as another error (an ImportError, SQLAlchemy's
    PendingRollbackError). While a command runs, the CLI's handler also records
    the signal (interrupts.py); every progress report (the heartbeat of all long
    work) and the end of the command look at that record, so a dropped interrupt
    still stops the command with 130, and whatever exception follows a recorded
    one is the interrupt: "interrupted", exit 130, never a traceback.
    """

    logging_before = 0  # logging's disable level before a Ctrl-C silenced it

    @classmethod
    @contextlib.contextmanager
    def watching(cls) -> Iterator[None]:
        previous = signal.getsignal(signal.SIGINT)
        # Only where Python's own handler would run (an ignored SIGINT, as in a background job, stays ignored),
        # and once: a group's sub-command runs under its group's watch.
        if previous is not signal.default_int_handler and not interrupts.at_once_handler(previous):
            yield
            return
        interrupts.reset()
        previous_hook = sys.unraisablehook
        signal.signal(signal.SIGINT, cls._handler)
        sys.unraisablehook = cls._unraisable
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
            sys.unraisablehook = previous_hook
            if interrupts.requested():
                import logging

                logging.disable(cls.logging_before)
            interrupts.reset(keep_announced=True)  # the command is over: later library work is no interrupt

    @classmethod
    def _handler(cls, signum: int, frame: Any) -> None:
        import logging

        if not interrupts.requested():
            # What libraries log from here on is what the interrupt broke (SQLAlchemy's "Exception during reset"
            # of a connection it cut short, with its traceback): the command says "interrupted" instead.
            cls.logging_before = logging.root.manager.disable
            logging.disable(logging.CRITICAL)
        interrupts.request()
        raise KeyboardInterrupt

    @staticmethod
    def _unraisable(info: Any) -> None:
        if interrupts.requested():
            return  # recorded: the next check stops the command, and whatever the interrupt broke is the interrupt
        sys.__unraisablehook__(info)

    @classmethod
    def check(cls) -> None:
        if interrupts.requested():
            raise KeyboardInterrupt


class _ReaderGone(io.RawIOBase):
    """A standard stream's file descriptor, written so that a reader that went away is no error.

    Writing to a pipe whose reader has closed it fails (EPIPE, BrokenPipeError in Python). The command's exit
    code must not depend on that: `zsindex ingest DIR 2>&1 | head -1` still exits 3 when files were skipped,
    and a usage error still exits 2. So the descriptor is pointed at /dev/null on the first such failure and
    every later write (ours, Click's, a progress bar's, the interpreter's last flush) goes there quietly.
    """

    def __init__(self, fd: int, best_effort: bool = False) -> None:
        super().__init__()
        self._fd = fd
        # stderr carries messages: any failure to write them (a full disk, 2>/dev/full) is no reason to change
        # the command's exit code either; stdout carries results, and only a reader that left may drop them
        self._gone: tuple[type[OSError], ...] = (OSError,) if best_effort else (BrokenPipeError,)

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return os.isatty(self._fd)

    def write(self, data: Any) -> int:
        try:
            return os.write(self._fd, data)
        except OSError as e:
            if not isinstance(e, self._gone):  # results that cannot be written (a full disk): the command fails
                raise OSError(e.errno, e.strerror, "<stdout>") from None
            sink = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(sink, self._fd)
            finally:
                os.close(sink)
            return len(memoryview(data))


@contextlib.contextmanager
def readers_may_go() -> Iterator[None]:
    """sys.stdout and sys.stderr written through _ReaderGone while the command runs (streams without a file
    descriptor, such as a test runner's, are left as they are); the previous streams come back after."""
    saved = {}
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        try:
            fd = stream.fileno()
            stream.flush()
        except (AttributeError, OSError, ValueError):
            continue
        saved[name] = stream
        setattr(sys, name, io.TextIOWrapper(
            io.BufferedWriter(_ReaderGone(fd, best_effort=name == "stderr")),
            encoding=getattr(stream, "encoding", None) or "utf-8",
            errors=getattr(stream, "errors", None) or "strict",
            line_buffering=bool(getattr(stream, "line_buffering", False)) or name == "stderr",
            write_through=bool(getattr(stream, "write_through", False))))
    try:
        yield
    finally:
        for name, stream in saved.items():
            ours = getattr(sys, name)
            with contextlib.suppress(Exception):
                ours.flush()
            setattr(sys, name, stream)


def _interrupted() -> click.exceptions.Exit:
    interrupts.announce(lambda text: click.echo(text, err=True))
    return click.exceptions.Exit(EXIT_INTERRUPTED)


class ZsGroup(click.Group):
    """A group whose commands (added in any module) map library errors to exit codes, and Ctrl-C to 130.

    An OSError that escaped the library (a file system fault it did not
    foresee) is shown as a message naming the file, not as a traceback. A
    reader of stdout or stderr that goes away changes no exit code (see
    _ReaderGone).
    """

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        _guard(cmd)
        super().add_command(cmd, name)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        _refuse_empty_paths(self)  # the group's own options (--db): its commands get theirs in add_command
        with readers_may_go():
            return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        import warnings

        # Pillow warns about odd EXIF and palettes in files it still decodes; the run reports real errors itself.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        # --max-megapixels is the bomb guard, as for a library caller: zsindex's decodes use it, not Pillow's
        # global PIL.Image.MAX_IMAGE_PIXELS (images.guarded), so that setting is left as it is.
        try:
            with _CtrlC.watching():
                try:
                    result = super().invoke(ctx)
                    _CtrlC.check()  # a Ctrl-C that something swallowed after the last progress report
                except BaseException as e:
                    # After a Ctrl-C, whatever ends the command is the interrupt: a partial run that a swallowed
                    # Ctrl-C let finish, the ImportError of a module it cut short, a broken transaction's error.
                    if isinstance(e, KeyboardInterrupt) or interrupts.requested():
                        raise _interrupted() from None
                    raise
            return result
        except BaseException as e:
            mapped = _mapped(e, ctx)
            if mapped is None:
                raise
            raise mapped from None


def _mapped(e: BaseException, ctx: click.Context) -> click.exceptions.ClickException | click.exceptions.Exit | None:
    """The CLI's exception for an error a command let through; None: let it through as it is."""
    if isinstance(e, click.exceptions.ClickException) or not isinstance(e, Exception):
        return None
    if isinstance(e, UsageError):  # from a command added around ZsGroup.add_command; guarded ones map their own
        return click.UsageError(cli_text(str(e), ctx), ctx)
    if isinstance(e, ZsindexError):
        return click.ClickException(cli_text(str(e), ctx))
    if isinstance(e, OSError):  # a pipe given as a file (export -o FIFO) whose reader left, too: not all was written
        from .errors import shown

        where = f"{shown(e.filename)}: " if isinstance(e.filename, (str, bytes)) else ""
        return click.ClickException(f"{where}{e.strerror or e}")
    return None


def open_standard_streams() -> None:
    """Give a closed stdin, stdout or stderr (``>&-``, ``2>&-``) /dev/null, before anything else is opened.

    Otherwise the next file the command opens takes that descriptor (the index's database, an image, a
    temporary file), and whatever is then written to stdout or stderr, by zsindex or by a native library,
    lands in it; and Python, which found no stream there, leaves sys.stdout or sys.stderr None, on which
    the first message failed with a traceback. Results and messages for a closed stream go nowhere; the
    exit code is the command's own.
    """
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        null = os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, "r" if fd == 0 else "w", encoding="utf-8", closefd=False,  # noqa: SIM115
                                    buffering=1 if fd else -1))


def run_main(group: click.Group) -> None:
    """Run the command line as this process's program (its entry point; tests call the group in-process).

    A Ctrl-C before or after the command's work ends the process at once with 130; one during it stops the
    command (ZsGroup.invoke), and then the process ends with os._exit(130) once stdout and stderr are flushed,
    so that no native thread pool is torn down under a thread still using it (interrupts.py). One that comes
    after the last exit handler, while native libraries unload, is ignored: the command's status stands.
    """
    import atexit

    open_standard_streams()
    interrupts.own_process()
    interrupts.stop_at_once()
    if interrupts.at_once_handler(signal.getsignal(signal.SIGINT)):
        atexit.register(interrupts.ignore_from_now)  # registered first, so called last
    try:
        group.main(prog_name="zsindex")  # standalone: always ends with SystemExit
    except SystemExit as e:
        if e.code == EXIT_INTERRUPTED:  # the command stopped for a Ctrl-C (and said so)
            interrupts.exit_interrupted()
        raise
    except KeyboardInterrupt:
        interrupts.exit_interrupted()


class ModelChoice:
    """The --model/--pretrained/--device flags as given (None: environment, index or default decides)."""

    def __init__(self, model: str | None, pretrained: str | None, device: str | None, runtime: str | None = None,
                 precision: str | None = None) -> None:
        self.model, self.pretrained, self.device = model, pretrained, device
        self.runtime, self.precision = runtime, precision

    def load(self) -> Any:
        from .embedder import load_embedder

        return load_embedder(self.model, self.pretrained, self.device, runtime=self.runtime,
                             precision=self.precision)


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
    @click.option("--runtime", type=click.Choice(config.RUNTIMES), default=None,
                  help=f"onnx: the model exported once to ONNX Runtime (CPU); torch: open_clip itself; auto: onnx "
                  f"when installed, torch for a GPU --device. Env {config.ENV_RUNTIME}  [default: auto]")
    @click.option("--precision", type=click.Choice(config.PRECISIONS), default=None,
                  help=f"Image tower precision; int8 is faster, slightly less exact (see README), onnx only; "
                  f"torch runs fp32. An index remembers its own  [default: {config.DEFAULT_ONNX_PRECISION} on onnx]")
    @functools.wraps(func)
    def wrapper(*args: Any, model: str | None, pretrained: str | None, device: str | None, runtime: str | None,
                precision: str | None, **kwargs: Any) -> Any:
        return func(*args, choice=ModelChoice(model, pretrained, device, runtime, precision), **kwargs)

    return wrapper


def index_folder_type() -> click.Path:
    """--index: a folder, not a file (a usage error). Whether it may be read is the library's to say, as a fault
    of the index folder (exit 1, with what to do), not Click's "Directory is not readable" usage error."""
    return click.Path(file_okay=False, readable=False, path_type=Path)


def index_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--index", "index_dir", type=index_folder_type(), envvar=config.ENV_INDEX,
        show_envvar=True, help=f"Index folder  [default: {config.default_index_dir()}]",
    )(func)


def ranged(name: str, method: str | None = None, integer: bool = False, scale: float = 1.0) -> click.ParamType:
    """The click type of a numeric option, its range the library's own (params.RANGES) so that the command
    line, the Python API and the HTTP API take the same values; ``scale``: the option's unit in the library's
    (--max-upload-mb: 1e6 bytes)."""
    from .params import range_of

    found = range_of(name, method)
    low, high = (None, None) if found is None else (found.low, found.high)
    if integer:
        return click.IntRange(None if low is None else math.ceil(low / scale),
                              None if high is None else math.floor(high / scale))
    return click.FloatRange(None if low is None else low / scale, None if high is None else high / scale)


def megapixels_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--max-megapixels, shared by every command that decodes image files the user gives (tests/test_cli_rules.py)."""
    return click.option(
        "--max-megapixels", type=ranged("max_megapixels"), default=config.DEFAULT_MAX_MEGAPIXELS, show_default=True,
        help="Refuse images larger than this, in megapixels, before decoding them (decompression-bomb guard).",
    )(func)


def root_db() -> str | None:
    """The `zsindex --db URL ...` given before the command, if any."""
    ctx = click.get_current_context(silent=True)
    return ctx.find_root().params.get("db") if ctx is not None else None


def open_library(index_dir: Path | None, choice: ModelChoice | None = None, create: bool = False) -> Any:
    from .library import Library

    db = root_db()
    if choice is None:
        return Library(index_dir, create=create, db=db)
    return Library(index_dir, model=choice.model, pretrained=choice.pretrained, device=choice.device, create=create,
                   runtime=choice.runtime, precision=choice.precision, db=db)


class ProgressBar:
    """A tqdm progress bar on stderr driven by the library's (stage, done, total) callback."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet or not sys.stderr.isatty()  # bars only for a person watching a terminal
        self.bar: Any = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        _CtrlC.check()  # long work reports here: stop it even if the KeyboardInterrupt itself was swallowed
        if self.quiet or total == 0:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=stage, unit="img", dynamic_ncols=True, leave=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def label_set_from(labels: str | None, labels_file: Path | None, templates: tuple[str, ...],
                   names: tuple[str, str] = ("labels", "labels_file")) -> Any:
    """A label set from an inline list or a file; ``names`` are the two options' parameter names."""
    from . import labels as labels_mod
    from .library import as_label_set

    if labels is not None and not labels.strip() and not labels_file:
        raise UsageError(f"{names[0]}= is empty; an empty label is not a label: give at least one, "
                         f"e.g. {names[0]}='cat,dog'")
    if bool(labels) == bool(labels_file):
        raise UsageError(f"give labels with exactly one of {names[0]}='a,b,c' or {names[1]}=FILE")
    if labels_file:
        return as_label_set(labels_mod.LabelSet(labels_mod.parse_label_file(labels_file)), templates)
    return as_label_set(labels or "", templates)


def warn_unmatched_path(lib: Any, pattern: str | None) -> None:
    """Every command with --path says so when its glob matches no indexed image (else it would be silent)."""
    if pattern is None or lib.path_matches(pattern):
        return
    from .output import warn

    warn(cli_text(f"warning: path= {pattern!r} matches no indexed image; see `zsindex search --help` for how "
                  "a glob is read"))
