"""The real Speech Commands: link or safely extract a local copy, or download one with a mandatory checksum."""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
import urllib.parse
import urllib.request
from pathlib import Path

from .layout import BACKGROUND_DIR, _check_target, _remove, _replace_dir


def _looks_like_speech_commands(root: Path) -> bool:
    if (root / BACKGROUND_DIR).is_dir():
        return True
    return any(d.is_dir() and not d.name.startswith("_") and any(d.glob("*_nohash_*.wav")) for d in root.iterdir())


def _dataset_root(extracted: Path) -> Path | None:
    """The dataset root inside an extracted archive: the top level, or a single wrapping folder."""
    if _looks_like_speech_commands(extracted):
        return extracted
    children = [c for c in extracted.iterdir() if not c.name.startswith(".")]
    if len(children) == 1 and children[0].is_dir() and _looks_like_speech_commands(children[0]):
        return children[0]
    return None


def _check_member(member: tarfile.TarInfo, dest: Path, archive: Path) -> None:
    def inside(relative: str) -> bool:
        target = (dest / relative).resolve()
        return target == dest or dest in target.parents

    name = member.name
    bad = None
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        bad = "has an absolute path"
    elif ".." in Path(name).parts or not inside(name):
        bad = "escapes the extraction directory"
    elif member.isdev():
        bad = "is a device or fifo"
    elif member.issym() and not inside(os.path.join(os.path.dirname(name), member.linkname)):
        bad = f"is a symlink pointing outside ({member.linkname!r})"
    elif member.islnk() and not inside(member.linkname):
        bad = f"is a hard link pointing outside ({member.linkname!r})"
    elif not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        bad = "has an unsupported type"
    if bad:
        raise ValueError(f"refusing to extract {archive}: member {name!r} {bad}; the archive is unsafe or corrupt")


def _safe_extract(archive: Path, dest: Path) -> None:
    dest = dest.resolve()
    dest.mkdir(parents=True)
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for m in members:
            _check_member(m, dest, archive)
        # Python's own 'data' filter (3.12, backported to 3.11.4) also strips permissions bits
        # such as setuid; our checks above give clearer messages and cover older Pythons.
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, members=members, filter="data")
        else:
            tar.extractall(dest, members=members)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download(url: str, sha256: str, target: Path, say) -> None:
    """Download url to target, verifying sha256; only a verified file ever appears at target."""
    part = target.with_name(target.name + ".part")
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as f:
            size = int(response.headers.get("Content-Length") or 0)
            done, shown = 0, -1
            for block in iter(lambda: response.read(1 << 20), b""):
                f.write(block)
                h.update(block)
                done += len(block)
                step = done * 20 // size if size else done >> 26  # every 5 % or every 64 MiB
                if step != shown:
                    shown = step
                    total = f"/{size / 1e6:.1f} MB ({100 * done / size:.0f} %)" if size else " MB"
                    say(f"download: {done / 1e6:.1f}{total} from {url}")
        actual = h.hexdigest()
        if actual != sha256:
            raise ValueError(
                f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}; "
                "the download is corrupt or the file changed upstream. Check the URL and the sha256 you configured."
            )
    except BaseException:
        part.unlink(missing_ok=True)  # also on Ctrl-C: never leave a partial file behind
        raise
    os.replace(part, target)


def fetch_speech_commands(out_dir, path=None, url=None, sha256=None, overwrite: bool = False, progress=print) -> Path:
    """Provide a real Speech Commands dataset at out_dir and return its root directory.

    path: an extracted dataset directory (symlinked to out_dir) or a .tar.gz archive (extracted).
    url:  an http(s):// or file:// archive to download; sha256 is mandatory so a changed or corrupt
          file is caught.
    The downloaded archive is kept next to out_dir and reused when its checksum still matches.
    """
    say = progress or (lambda *_: None)
    out_dir = Path(out_dir)
    if (path is None) == (url is None):
        raise ValueError("fetch_speech_commands needs exactly one of path= (directory or .tar.gz) or url=")
    if path is not None and Path(path).is_dir() and Path(path).resolve() == out_dir.resolve():
        return out_dir  # already in place
    _check_target(out_dir, overwrite)

    if url is not None:
        if not sha256 or not re.fullmatch(r"[0-9a-fA-F]{64}", str(sha256)):
            raise ValueError(
                f"url={url!r} given without a valid sha256 (got {sha256!r}); "
                "pass the archive's 64-hex-digit sha256 so the download can be verified"
            )
        sha256 = sha256.lower()
        if urllib.parse.urlparse(url).scheme not in ("http", "https", "file"):
            raise ValueError(f"url={url!r}: only http://, https:// and file:// (a local mirror) are supported")
        name = Path(urllib.parse.urlparse(url).path).name or "speech_commands.tar.gz"
        archive = out_dir.with_name(f"{out_dir.name}.{name}")
        if archive.is_file() and _sha256(archive) == sha256:
            say(f"download: reusing verified {archive}")
        else:
            archive.parent.mkdir(parents=True, exist_ok=True)
            _download(url, sha256, archive, say)
        path = archive

    path = Path(path)
    if path.is_dir():
        if not _looks_like_speech_commands(path):
            raise ValueError(
                f"{path} does not look like Speech Commands: expected word folders with *_nohash_*.wav "
                f"files or a {BACKGROUND_DIR}/ folder"
            )
        link = out_dir.with_name(out_dir.name + ".partial")
        _remove(link)
        link.symlink_to(path.resolve(), target_is_directory=True)
        _replace_dir(link, out_dir)
        say(f"fetch: using {path} via symlink {out_dir}")
        return out_dir

    if not path.is_file() or not tarfile.is_tarfile(path):
        raise ValueError(f"{path} is neither a Speech Commands directory nor a readable .tar.gz archive")
    tmp = out_dir.with_name(out_dir.name + ".partial")
    _remove(tmp)
    say(f"fetch: extracting {path}")
    try:
        _safe_extract(path, tmp)
        root = _dataset_root(tmp)
        if root is None:
            raise ValueError(f"{path} holds no Speech Commands dataset (no word folders or {BACKGROUND_DIR}/)")
        if root != tmp:  # archive wrapped everything in one folder: lift it so out_dir is the root
            lifted = tmp.with_name(tmp.name + "-root")
            _remove(lifted)
            os.replace(root, lifted)
            _remove(tmp)
            tmp = lifted
        _replace_dir(tmp, out_dir)
    finally:
        _remove(tmp)
    say(f"fetch: extracted to {out_dir}")
    return out_dir
