"""Download, verify and install the official COCO captioning data (run by ../get_datasets.sh).

The archive is downloaded to DEST/coco_captioning.zip.part (a broken-off download resumes with an
HTTP Range request), renamed to coco_captioning.zip once complete, checked (expected files, CRCs
while unpacking), unpacked into a temporary folder, checked again (h5 keys, dtypes, shapes) and
only then renamed to DEST/coco_captioning. Any failure prints one line and exits with status 1.

Usage: python fetch_coco.py --url URL --dest DEST
"""
import argparse
import http.client
import os
import shutil
import sys
import tempfile
import threading
import urllib.error
import urllib.request
import zipfile
import zlib

import coco_format
from tqdm import tqdm

NAME = "coco_captioning"
CONNECT_TIMEOUT = 8  # seconds until the response headers (includes name lookup)
READ_TIMEOUT = 60  # seconds without data before a running download is given up
OFFLINE_HINT = "./get_datasets.sh --mini builds an offline dataset instead"


class Failure(Exception):
    """A one-line explanation for the user."""


def open_url(url, offset):
    """The response for `url` from byte `offset` on, or Failure if none arrives in CONNECT_TIMEOUT."""
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    result = {}

    def fetch():
        try:
            result["response"] = urllib.request.urlopen(request, timeout=READ_TIMEOUT)
        except Exception as e:  # handed to the caller
            result["error"] = e

    # A thread bounds the wait: urlopen's timeout does not cover a hanging DNS lookup.
    thread = threading.Thread(target=fetch, daemon=True)
    thread.start()
    thread.join(CONNECT_TIMEOUT)
    if thread.is_alive():
        raise Failure(f"no answer from {url} within {CONNECT_TIMEOUT} s; {OFFLINE_HINT}")
    if "error" in result:
        raise result["error"]
    return result["response"]


def download(url, part, label=NAME + ".zip", hint=OFFLINE_HINT):
    """Download `url` into the file `part`, resuming from its current size (the progress bar says
    label; a failure's message ends with hint)."""
    offset = os.path.getsize(part) if os.path.exists(part) else 0
    try:
        try:
            response = open_url(url, offset)
        except urllib.error.HTTPError as e:
            if e.code == 416 and e.headers.get("Content-Range") == f"bytes */{offset}":
                return  # the previous run got every byte
            raise
        with response:
            if response.status != 206:  # the server ignored the Range header: start over
                offset = 0
            total = None if response.length is None else offset + response.length
            bar = tqdm(desc=label, total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024)
            with open(part, "ab" if offset else "wb") as f, bar:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        raise Failure(f"downloading {url} failed: HTTP {e.code} {e.reason}; {hint}") from None
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as e:
        raise Failure(f"downloading {url} failed ({getattr(e, 'reason', e)}); re-run to retry "
                      f"(a partial download resumes), or {hint}") from None
    if total is not None and os.path.getsize(part) != total:
        raise Failure(f"downloading {url} stopped at {os.path.getsize(part)} of {total} bytes; re-run to resume")


def unpack(archive, target):
    """Unpack the dataset files of `archive` into a temporary folder, verify them, rename to `target`."""
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
        prefix = next((p for p in (f"{NAME}/", "") if all(p + f in names for f in coco_format.FILES)), None)
        if prefix is None:
            raise ValueError(f"it lacks some of {', '.join(coco_format.FILES)}")
        tmp = tempfile.mkdtemp(prefix=f".{NAME}-", dir=os.path.dirname(target))
        try:
            for name in coco_format.FILES:
                zf.extract(prefix + name, tmp)  # checks the CRC
            folder = os.path.join(tmp, prefix)
            coco_format.verify(folder)
            os.chmod(folder, 0o755)  # mkdtemp makes it private
            coco_format.install(folder, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def fetch(url, dest):
    """Make sure DEST/coco_captioning holds the verified dataset; Failure otherwise."""
    target = os.path.join(dest, NAME)
    if os.path.isdir(target):
        try:
            coco_format.verify(target)
        except ValueError as e:
            raise Failure(f"{target} exists but is incomplete ({e}); delete it and re-run") from None
        print(f"The COCO captioning dataset is already in {target}; nothing to do.")
        return
    os.makedirs(dest, exist_ok=True)
    archive = os.path.join(dest, f"{NAME}.zip")
    if not os.path.exists(archive):
        download(url, archive + ".part")
        os.replace(archive + ".part", archive)
    try:
        unpack(archive, target)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as e:
        os.remove(archive)
        raise Failure(f"the archive from {url} is not a valid COCO captioning dataset ({e}); "
                      f"deleted it, re-run to download it again") from None
    os.remove(archive)
    print(f"Installed the COCO captioning dataset in {target}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--dest", required=True, help="folder to hold coco_captioning/")
    args = parser.parse_args()
    try:
        fetch(args.url, os.path.abspath(args.dest))
    except (Failure, OSError) as e:
        sys.exit(f"get_datasets.sh: {e}")


if __name__ == "__main__":
    main()
