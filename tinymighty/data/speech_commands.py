"""The real Speech Commands: link or safely extract a local copy, or download one with a mandatory checksum."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path

from ..errors import InputError
from .layout import BACKGROUND_DIR, _check_target, _remove, _replace_dir

# Seconds without a byte from the server (connecting, or mid-download) before the download is abandoned.
DOWNLOAD_STALL_SECONDS = 15
# What tarfile raises on a truncated or damaged .tar.gz (a matching sha256 only proves it is the file named).
_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)


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
        raise InputError(f"refusing to extract {archive}: member {name!r} {bad}; the archive is unsafe or corrupt")


def _safe_extract(archive: Path, dest: Path) -> None:
    dest = dest.resolve()
    dest.mkdir(parents=True)
    try:
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
    except _ARCHIVE_ERRORS as err:
        if isinstance(err, OSError) and not isinstance(err, EOFError) and err.errno is not None:
            raise  # a disk problem (full, permissions), not the archive's
        raise InputError(
            f"{archive} is truncated or corrupt ({type(err).__name__}: {err}); nothing was extracted. Download or "
            "copy it again (a matching sha256 only proves it is the file whose checksum you configured)"
        ) from err


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
        with _open_url(url) as response, open(part, "wb") as f:
            size = int(response.headers.get("Content-Length") or 0)
            done, shown = 0, -1
            for block in iter(lambda: _read_block(response, url), b""):
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
            raise InputError(
                f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}; "
                "the download is corrupt or the file changed upstream. Check the URL and the sha256 you configured."
            )
    except BaseException:
        part.unlink(missing_ok=True)  # also on Ctrl-C: never leave a partial file behind
        raise
    os.replace(part, target)


def _open_url(url: str):
    """urlopen with errors that name the URL and say what to do; the cause stays chained."""
    try:
        return urllib.request.urlopen(url, timeout=DOWNLOAD_STALL_SECONDS)
    except urllib.error.HTTPError as err:
        raise InputError(
            f"download of {url} failed: the server answered HTTP {err.code} {err.reason}; check data.url"
        ) from err
    except urllib.error.URLError as err:
        reason = err.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            what = f"no answer within {DOWNLOAD_STALL_SECONDS} s"
        else:
            what = getattr(reason, "strerror", None) or str(reason)
        raise InputError(
            f"cannot download {url}: {what}; check data.url and the network (proxy settings), or download the "
            "archive yourself and set data.path to it"
        ) from err
    except (TimeoutError, socket.timeout) as err:
        raise InputError(
            f"cannot download {url}: the server accepted the connection but sent nothing within "
            f"{DOWNLOAD_STALL_SECONDS} s; try again later, or download it yourself and set data.path"
        ) from err
    except (http.client.HTTPException, OSError) as err:
        raise InputError(f"cannot download {url}: {type(err).__name__}: {err}; check data.url and try again") from err


def _read_block(response, url: str) -> bytes:
    try:
        return response.read(1 << 20)
    except (TimeoutError, socket.timeout) as err:
        raise InputError(
            f"download of {url} stalled: no data for {DOWNLOAD_STALL_SECONDS} s; try again, or download it yourself "
            "and set data.path"
        ) from err
    except (http.client.HTTPException, OSError) as err:
        raise InputError(
            f"download of {url} broke off ({type(err).__name__}: {err}); try again, or download it yourself and set "
            "data.path"
        ) from err


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
        raise InputError("fetch_speech_commands needs exactly one of path= (directory or .tar.gz) or url=")
    if path is not None and Path(path).is_dir() and Path(path).resolve() == out_dir.resolve():
        return out_dir  # already in place
    _check_target(out_dir, overwrite)

    download = None  # the archive this function keeps next to out_dir, if any
    if url is not None:
        if not sha256 or not re.fullmatch(r"[0-9a-fA-F]{64}", str(sha256)):
            raise InputError(
                f"url={url!r} given without a valid sha256 (got {sha256!r}); "
                "pass the archive's 64-hex-digit sha256 so the download can be verified"
            )
        sha256 = sha256.lower()
        if urllib.parse.urlparse(url).scheme not in ("http", "https", "file"):
            raise InputError(f"url={url!r}: only http://, https:// and file:// (a local mirror) are supported")
        name = Path(urllib.parse.urlparse(url).path).name or "speech_commands.tar.gz"
        # The one copy of a downloaded archive: next to out_dir, reused while its checksum matches.
        archive = out_dir.with_name(f"{out_dir.name}.{name}")
        mirror = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
        if urllib.parse.urlparse(url).scheme == "file" and mirror.is_file():
            # A local mirror is verified and extracted where it is: a copy would keep the archive twice.
            actual = _sha256(mirror)
            if actual != sha256:
                raise InputError(
                    f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}; "
                    "check the file and the sha256 you configured"
                )
            say(f"fetch: verified {mirror} (used in place, not copied)")
            archive = mirror
        elif archive.is_file() and _sha256(archive) == sha256:
            say(f"download: reusing verified {archive}")
        else:
            archive.parent.mkdir(parents=True, exist_ok=True)
            _download(url, sha256, archive, say)
        if archive != mirror:
            download = archive
        path = archive

    path = Path(path)
    if path.is_dir():
        if not _looks_like_speech_commands(path):
            raise InputError(
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
        raise InputError(f"{path} is neither a Speech Commands directory nor a readable .tar.gz archive")
    tmp = out_dir.with_name(out_dir.name + ".partial")
    _remove(tmp)
    say(f"fetch: extracting {path}")
    try:
        _safe_extract(path, tmp)
        root = _dataset_root(tmp)
        if root is None:
            raise InputError(f"{path} holds no Speech Commands dataset (no word folders or {BACKGROUND_DIR}/)")
        if root != tmp:  # archive wrapped everything in one folder: lift it so out_dir is the root
            lifted = tmp.with_name(tmp.name + "-root")
            _remove(lifted)
            os.replace(root, lifted)
            _remove(tmp)
            tmp = lifted
        _replace_dir(tmp, out_dir)
    except InputError as err:
        if download is None:
            raise
        # The download's checksum matched, so the configured sha256 is this unusable file's: a kept copy
        # would be reused as verified by every run. It goes; the URL or the sha256 needs fixing.
        download.unlink()
        raise InputError(
            f"{url} gives an archive this project cannot use, although its sha256 is the one configured: {err}. "
            "The download was deleted; check data.url and data.sha256 against the dataset's published checksum"
        ) from err
    finally:
        _remove(tmp)
    say(f"fetch: extracted to {out_dir}")
    return out_dir
