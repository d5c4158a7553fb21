"""Put a staged set of generated files into the user's output folder without losing any of the user's files.

`compile -o DIR` may point at a folder that already holds the user's own work
(their `app.c`, the model itself, `-o .`). The rules, see docs/ARCHITECTURE.md
("output folder"):

  * every folder we write gets a manifest, MANIFEST, naming the files we wrote
    (with their SHA-256);
  * a missing or empty folder is simply filled;
  * a folder with our manifest gets exactly our files replaced: each one is
    written aside (in a staging folder inside DIR, so on the same file system)
    and renamed over the old one; files the previous manifest named that the new
    output no longer has are removed only when unchanged since we wrote them;
  * a non-empty folder without our manifest is refused (one clear line) unless
    `force`; even then nothing is deleted, and a file of the user's that has the
    name of one of ours is never overwritten (the whole write is refused first);
  * the folder itself is never renamed or replaced (it may be the current
    directory), and folders and files get the user's normal permissions (umask),
    not the 0700 / 0600 of temporary files.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Mapping

from onnx2mcu.errors import UserError

MANIFEST = ".onnx2mcu-manifest.json"
STAGING_PREFIX = ".onnx2mcu-staging-"


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_dir_mode() -> int:
    return 0o777 & ~current_umask()


def default_file_mode() -> int:
    return 0o666 & ~current_umask()


def make_staging(out_dir: str | os.PathLike) -> Path:
    """A fresh staging folder inside `out_dir` (created with normal permissions when missing).

    Inside the destination, so the final renames never cross a file system and
    `-o .` needs no write access to the parent folder."""
    out = Path(out_dir).resolve()
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; choose a folder for -o")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
    if created:
        (staging / ".created-by-us").write_bytes(b"")  # lets discard() remove the folder again
    return staging


def discard(staging: Path) -> None:
    """Remove a staging folder after a failure (and the output folder if we only just created it)."""
    staging = Path(staging)
    created = (staging / ".created-by-us").exists()
    shutil.rmtree(staging, ignore_errors=True)
    if created:
        try:
            staging.parent.rmdir()  # only when empty: never removes anything else
        except OSError:
            pass


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(out: Path) -> dict[str, str] | None:
    """{relative path: sha256} of the files a previous compile wrote into `out`, or None."""
    path = out / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data["files"]
        if data.get("generator") != "onnx2mcu" or not isinstance(files, dict):
            raise ValueError
    except (ValueError, KeyError, TypeError, OSError):
        raise UserError(f"{path}: not a valid onnx2mcu manifest; remove it, or choose another output "
                        "folder") from None
    return {str(k): str(v) for k, v in files.items()}


def _staged_files(staging: Path) -> list[str]:
    return sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*")
                  if p.is_file() and p.name != ".created-by-us")


def _user_entries(out: Path, staging: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p != staging and p.name != MANIFEST
                  and not p.name.startswith(STAGING_PREFIX))


def _safe(rel: str) -> str:
    parts = Path(rel).parts
    if Path(rel).is_absolute() or ".." in parts or not parts:
        raise UserError(f"{MANIFEST}: entry '{rel}' points outside the output folder; remove the manifest")
    return rel


def install(staging: str | os.PathLike, force: bool = False, version: str = "") -> Path:
    """Move every file of `staging` into its parent folder by the rules above; returns that folder.

    `staging` comes from make_staging(). On any refusal the staging folder is
    discarded and the output folder is left exactly as it was."""
    staging = Path(staging)
    out = staging.parent
    try:
        new = _staged_files(staging)
        old = read_manifest(out)
        if old is None:
            entries = _user_entries(out, staging)
            if entries and not force:
                shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
                raise UserError(f"{out}: folder is not empty ({shown}) and was not written by onnx2mcu; "
                                "choose a new or empty folder, or pass --force to add the generated files "
                                "beside yours (nothing of yours is deleted)")
            old = {}
        old = {_safe(k): v for k, v in old.items()}
        clashes = [rel for rel in new if rel not in old and (out / rel).exists()]
        if clashes:
            raise UserError(f"{out}: would overwrite your file(s) {', '.join(clashes[:8])}, which onnx2mcu "
                            "did not write; move them away or choose another output folder")
        manifest = {rel: sha256_of(staging / rel) for rel in new}
        dir_mode = default_dir_mode()
        for rel in new:
            target = out / rel
            for parent in reversed(target.relative_to(out).parents[:-1]):
                folder = out / parent
                if not folder.is_dir():
                    folder.mkdir(mode=dir_mode)
            if target.is_dir():
                raise UserError(f"{target}: is a folder, where onnx2mcu writes a file; move it away")
            os.replace(staging / rel, target)
        for rel in sorted(set(old) - set(new)):
            stale = out / rel
            # ours and unchanged since: remove; edited by the user since: keep
            if stale.is_file() and sha256_of(stale) == old[rel]:
                stale.unlink()
        data = {"generator": "onnx2mcu", "version": version, "files": manifest}
        (staging / MANIFEST).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(staging / MANIFEST, out / MANIFEST)
    finally:
        created = (staging / ".created-by-us").exists()
        shutil.rmtree(staging, ignore_errors=True)
        if created and not any(out.iterdir()):
            out.rmdir()
    return out


def _only_ours(out: Path) -> bool:
    """Whether `out` holds nothing but what our manifest lists (and our own staging folders)."""
    listed = read_manifest(out)
    if listed is None:
        return False
    for path in out.rglob("*"):
        rel = path.relative_to(out).as_posix()
        if rel == MANIFEST or rel.split("/")[0].startswith(STAGING_PREFIX):
            continue
        if path.is_file() and rel not in listed:
            return False
        if path.is_dir() and not any(k.startswith(rel + "/") for k in listed):
            return False
    return True


def _manifest_text(folder: Path, version: str) -> str:
    files = {rel: sha256_of(folder / rel) for rel in _staged_files(folder) if rel != MANIFEST}
    return json.dumps({"generator": "onnx2mcu", "version": version, "files": files},
                      indent=1, sort_keys=True) + "\n"


def write_output(out_dir: str | os.PathLike, files: Mapping[str, str | bytes],
                 finish: Callable[[Path], None] | None = None, force: bool = False,
                 version: str = "") -> Path:
    """Write a generated output folder; the one entry point of compile (docs/ARCHITECTURE.md,
    "output folder").

    A missing folder, or one holding only what an earlier compile wrote (our manifest, and
    not the current directory), is replaced whole by one atomic swap (onnx2mcu/fileio.py):
    an interrupted compile leaves the old folder or the new one, never a mix, and the next
    compile removes a killed one's staging folders.  A folder holding anything of the
    user's is never swapped: our files are replaced one by one (`install`), and none of the
    user's is deleted or overwritten."""
    from onnx2mcu.fileio import remove_stale_staging, write_files, write_folder_atomic

    out = Path(out_dir).resolve()
    remove_stale_staging(out)
    whole = not out.exists() or (out.is_dir() and out != Path.cwd().resolve() and _only_ours(out))
    if whole:
        def finish_with_manifest(tmp: Path) -> None:
            if finish is not None:
                finish(tmp)
            (tmp / MANIFEST).write_text(_manifest_text(tmp, version), encoding="utf-8")

        return write_folder_atomic(out, files, finish_with_manifest)
    staging = make_staging(out)
    try:
        write_files(staging, files)
        if finish is not None:
            finish(staging)
    except BaseException:
        discard(staging)
        raise
    return install(staging, force=force, version=version)
