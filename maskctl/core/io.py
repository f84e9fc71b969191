"""Atomic writes for every file a user keeps: write a temp file beside the target, then rename.
Output places are checked before any work (`require_writable`), claimed by one process at a
time (`claim_output`), and output folders a failed command made are removed again
(`discard_outputs_on_failure`, around every command). --overwrite replaces only what the
command wrote: an output folder's mark lists it."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from maskctl.core.errors import MaskctlError

_UMASK = os.umask(0)  # reading the umask means setting it: once, at import, and put back at once
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temp path in the target's folder; on success it replaces `path` in one rename."""
    path = Path(path)
    tmp_path = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; a kept file gets the usual mode
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as exc:
        # A full disk raises from a write with no file name: the line the user sees names the target.
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


OUTPUT_MARK = ".maskctl-output"  # in a folder a command wrote whole: names the command


def check_replaceable(out: str | Path, kind: str, overwrite: bool) -> Path:
    """Before any work: `out` can become `maskctl KIND`'s output folder. It is missing, empty, or
    an earlier KIND output (then --overwrite replaces it). Any other folder, a run or your data,
    is refused even with --overwrite: replacing it would delete what it holds."""
    out = Path(out)
    require_writable(out.parent)
    claim_output(out)
    if out.exists():
        if not out.is_dir():
            raise MaskctlError(f"{out} is a file, not a folder")
        if any(out.iterdir()):
            if _output_kind(out) != kind:
                raise MaskctlError(f"{out} holds other files (it is not an earlier `maskctl {kind}` output): choose another --out")
            if not overwrite:
                raise MaskctlError(f"{out} holds an earlier `maskctl {kind}` output; pass --overwrite or choose --out")
    return out


def _output_kind(folder: Path) -> str | None:
    lines = _mark_lines(folder)
    return lines[0].strip() if lines else None


def _mark_lines(folder: Path) -> list[str]:
    """The output mark: the command's name, then `SHA256  NAME` for each file it wrote there."""
    try:
        return (folder / OUTPUT_MARK).read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return []


def own_files(folder: Path) -> dict[str, str] | None:
    """Name -> SHA-256 of the files the folder's mark says maskctl wrote; None for a mark of an
    older maskctl that lists none."""
    lines = _mark_lines(folder)[1:]
    if not lines:
        return None
    return dict(reversed(line.split("  ", 1)) for line in lines if "  " in line)


def _write_mark(folder: Path, kind: str, files: dict[str, str]) -> None:
    write_text(folder / OUTPUT_MARK, "".join([f"{kind}\n", *(f"{digest}  {name}\n" for name, digest in sorted(files.items()))]))


def replace_own_file(path: Path, text: str, kind: str) -> bool:
    """Writes `path`, unless a file is there that maskctl did not write (or that was edited
    since): that is kept and False returned. The folder's mark records what was written."""
    path = Path(path)
    own = own_files(path.parent) or {}
    if path.exists() and own.get(path.name) != file_sha256(path):
        return False
    write_text(path, text)
    _write_mark(path.parent, kind, {**own, path.name: file_sha256(path)})
    return True


@contextlib.contextmanager
def staged_folder(out: str | Path, kind: str) -> Iterator[Path]:
    """Yields an empty staging folder beside `out`; when the block succeeds the finished folder
    takes `out`'s place in one rename (an old KIND output is moved aside first, what it holds
    that KIND did not write carried over), and when it fails `out` is as it was: a folder of
    outputs is never left half-written. Its mark lists the files the block wrote. Staging
    folders of killed commands are removed on the way in."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MaskctlError(f"{out} is a file, not a folder")
    _remove_dead_stagings(out)
    staging = out.parent / f".{out.name}.tmp{os.getpid()}"
    made = _first_missing(out.parent)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        (staging / OUTPUT_MARK).write_text(kind + "\n")
        yield staging
        _write_mark(staging, kind, {p.name: file_sha256(p) for p in staging.iterdir() if p.is_file() and p.name != OUTPUT_MARK})
        if out.exists():
            if any(out.iterdir()) and _output_kind(out) != kind:  # it changed while we worked
                raise MaskctlError(f"{out} holds other files (it is not an earlier `maskctl {kind}` output): choose another --out")
            _carry_others(out, staging, kind)
            old = out.parent / f".{out.name}.old{os.getpid()}"
            os.replace(out, old)
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    except BaseException:
        if made is not None:  # the folders above `out` that staging made go too
            shutil.rmtree(made, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _carry_others(out: Path, staging: Path, kind: str) -> None:
    """What `out` holds that the earlier KIND did not write (your notes, predictions made from
    an export) goes into the new output: linked, not moved, so that a kill before the swap
    leaves it where it was."""
    own = own_files(out)
    for entry in out.iterdir():
        if entry.name == OUTPUT_MARK or (own is not None and entry.name in own) or (own is None and (staging / entry.name).exists()):
            continue
        if (staging / entry.name).exists():
            raise MaskctlError(f"{entry} is not a file `maskctl {kind}` wrote, and the new output has one of that name: move it, or choose another --out")
        if entry.is_dir():
            shutil.copytree(entry, staging / entry.name, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry, staging / entry.name)


def _link_or_copy(source, target) -> None:
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:  # a filesystem without hard links
        shutil.copy2(source, target, follow_symlinks=False)


def _remove_dead_stagings(out: Path) -> None:
    """`.NAME.tmpPID` and `.NAME.oldPID` beside `out` whose process is gone (kill -9)."""
    import re

    if not out.parent.is_dir():
        return
    pattern = re.compile(rf"\.{re.escape(out.name)}\.(?:tmp|old)([0-9]+)")
    for leftover in out.parent.glob(f".{out.name}.*"):
        found = pattern.fullmatch(leftover.name)
        if found and not process_alive(int(found.group(1))):
            shutil.rmtree(leftover, ignore_errors=True)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays, Paths
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def write_csv(path: str | Path, table, **kwargs) -> Path:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, **kwargs)
    return Path(path)


def write_csv_rows(path: str | Path, header: list[str], rows) -> Path:
    """A CSV from plain rows, laid out as pandas' to_csv writes it (minimal quoting, \\n)."""
    import csv

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return Path(path)


def save_figure(path: str | Path, figure) -> Path:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", dpi=110, bbox_inches="tight")
    return Path(path)


def write_set_record(path: str | Path, record: dict, members: list[Path]) -> Path:
    """Written after the files of one output set (predict's submission.csv and probs.csv): it
    holds each member's digest, so a set torn by a kill between its files is detectably torn."""
    return write_json(path, {**record, "files": {Path(m).name: file_sha256(m) for m in members}})


def check_set_record(path: str | Path, names: list[str], remedy: str = "predict again") -> None:
    """The files `names` beside `path` are the set its record describes, or one line says not
    (ending with `remedy`: how to make the set again)."""
    from maskctl.core.schema import read_json

    path = Path(path)
    if not path.is_file():
        present = [name for name in names if (path.parent / name).is_file()]  # what is there, not what the set should hold
        held = f"has {' and '.join(present)} but no {path.name}" if present else f"has none of {', '.join(names)}, {path.name}"
        raise MaskctlError(f"{path.parent} {held}: it was cut short; {remedy}")
    record = read_json(path, "output record")
    digests = record.get("files") if isinstance(record, dict) else None
    for name in names:
        member = path.parent / name
        if not isinstance(digests, dict) or not member.is_file() or digests.get(name) != file_sha256(member):
            raise MaskctlError(f"{path.parent / name} is not the file {path.name} records (interrupted, older, or edited by hand); {remedy}")


def file_sha256(path: str | Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare_output_dir(path: str | Path, overwrite: bool) -> Path:
    """An existing, non-empty output folder is refused unless the user said --overwrite."""
    path = require_writable(path)
    claim_output(path)
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise MaskctlError(f"output folder {path} already exists; pass --overwrite to replace its files")
    made = _first_missing(path)
    path.mkdir(parents=True, exist_ok=True)
    if made is not None and _made_by_this_command is not None:
        _made_by_this_command.append(made)
    return path


def require_writable(folder: str | Path) -> Path:
    """Before any work: `folder` is a folder this process can write in, or can be made as one
    (a file in its place, or a read-only or missing place above it, is one line now rather
    than a traceback after the work)."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == folder else f" ({existing} is a file)"
        raise MaskctlError(f"cannot write to {folder}: not a folder{where}")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise MaskctlError(f"cannot write to {folder}: {existing}: {exc.strerror or exc}") from None
    return folder


def _first_missing(path: Path) -> Path | None:
    """The outermost folder that making `path` would create; None when it exists."""
    missing = None
    while not path.exists() and path.parent != path:
        missing, path = path, path.parent
    return missing


_made_by_this_command: list[Path] | None = None
_command_scope: contextlib.ExitStack | None = None
_claimed: dict[Path, tuple[int, Path]] = {}  # output -> its lock file (descriptor, path), held by this process


def claim_output(out: str | Path) -> None:
    """Before the check that `out` may be written: this process is its only writer until the
    command ends (an exclusive lock on `.NAME.lock` beside it), or one line says which process
    writes it. Two commands started into the same new --out would otherwise both pass the check,
    both exit 0, and one result would be gone."""
    import fcntl

    out = Path(os.path.abspath(out))
    if out in _claimed:
        return
    made = _first_missing(out.parent)
    out.parent.mkdir(parents=True, exist_ok=True)
    if made is not None and _made_by_this_command is not None:
        _made_by_this_command.append(made)
    lock = out.parent / f".{out.name}.lock"
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
        except PermissionError:
            if not out.is_dir() or lock.parent == out:
                raise
            lock = out / ".maskctl.lock"  # a writable folder in a read-only one (predict into it): the lock goes inside
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise MaskctlError(f"another maskctl process{f' ({holder})' if holder else ''} is writing {out}: "
                               f"wait for it to end, or choose another --out") from None
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # its holder removed it as we opened it: take the one there now
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()}".encode())
    _claimed[out] = (fd, lock)
    if _command_scope is not None:
        _command_scope.callback(_release, out)
    else:
        import atexit

        atexit.register(_release, out)


def _release(out: Path) -> None:
    fd, lock = _claimed.pop(out, (None, None))
    if fd is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)  # before unlocking: one who opened it meanwhile finds it gone, and retries
        os.close(fd)


@contextlib.contextmanager
def discard_outputs_on_failure() -> Iterator[None]:
    """Output folders that `prepare_output_dir` makes inside the block are removed when the
    block fails (or is interrupted): a failed command leaves no half-made folder behind. A
    folder that existed before is never removed."""
    global _made_by_this_command, _command_scope
    outer, _made_by_this_command = _made_by_this_command, []
    outer_scope, _command_scope = _command_scope, contextlib.ExitStack()
    try:
        with _command_scope:  # the outputs this command claimed are released when it ends
            yield
    except BaseException:
        for folder in reversed(_made_by_this_command):
            shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        _made_by_this_command, _command_scope = outer, outer_scope
