"""The weights download, against an HTTP server on 127.0.0.1 started by the test."""

import hashlib
import http.server
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from vggnp.files import download as dl
from vggnp.files import official, outputs

PAYLOAD = os.urandom(3 * 2**20 + 12345)  # stands in for the 553 MB file
MD5 = hashlib.md5(PAYLOAD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    requests = []

    def do_GET(self):
        Handler.requests.append(self.path)
        if self.path in ("/good.h5", "/slow.h5", "/crawl.h5"):
            body, kind = PAYLOAD, "application/octet-stream"
        elif self.path == "/corrupt.h5":
            # the last byte flipped: PAYLOAD is random, and one time in 256 it ended in the
            # b"x" once put here, which made the "corrupt" file the good one
            body, kind = PAYLOAD[:-1] + bytes([PAYLOAD[-1] ^ 0xFF]), "application/octet-stream"
        elif self.path == "/html.h5":
            body, kind = b"<html><body>Please log in</body></html>", "text/html; charset=utf-8"
        elif self.path == "/short.h5":
            # Promise the whole file, send half, close: a connection that broke off.
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.close_connection = True
            return
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        pieces = {"/slow.h5": 8, "/crawl.h5": 64}.get(self.path, 1)
        step = -(-len(body) // pieces)
        try:
            for i in range(0, len(body), step):
                self.wfile.write(body[i:i + step])
                time.sleep(0.05 if pieces == 8 else 0.2 if pieces == 64 else 0)
        except (BrokenPipeError, ConnectionResetError):  # the client was killed
            pass

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def fetch(server, tmp_path, name, **kwargs):
    return dl.download(f"{server}/{name}", str(tmp_path / "weights.h5"), len(PAYLOAD), MD5,
                       progress=kwargs.pop("progress", False), **kwargs)


def leftovers(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir())  # a lock file too: there must be none


def test_good_file_is_verified_and_renamed(server, tmp_path, capsys):
    path = fetch(server, tmp_path, "good.h5", progress=True)
    with open(path, "rb") as f:
        assert f.read() == PAYLOAD
    assert leftovers(tmp_path) == ["weights.h5"]
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~outputs.umask()  # not mkstemp's 0600
    err = capsys.readouterr().err
    assert "Downloading" in err and "100.0%" in err
    Handler.requests.clear()
    assert fetch(server, tmp_path, "good.h5") == path  # already there: no request
    assert Handler.requests == []


@pytest.mark.parametrize("name, message", [
    ("corrupt.h5", "corrupt: md5"),
    ("short.h5", "stopped at|failed"),
    ("html.h5", "HTML page"),
    ("missing.h5", "Not Found"),
])
def test_bad_downloads_leave_nothing_behind(server, tmp_path, name, message):
    with pytest.raises(dl.DownloadError, match=message):
        fetch(server, tmp_path, name)
    assert leftovers(tmp_path) == []


def test_offline_message_says_url_path_and_weights_flag(tmp_path):
    with pytest.raises(dl.DownloadError) as info:
        dl.download("http://127.0.0.1:9/none.h5", str(tmp_path / "w.h5"), 1, "0", progress=False)
    text = "\n".join([str(info.value), *info.value.advice])
    assert "\n" not in str(info.value)  # one line, then the advice, one line each
    assert "http://127.0.0.1:9/none.h5" in text and str(tmp_path / "w.h5") in text
    assert "--weights" in text and "shapes_convnet.keras" in text  # the demo runs offline
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", ["short", "folder"])
def test_a_wrong_file_in_the_way_is_named_not_replaced(server, tmp_path, kind):
    """A file of the download's name but not its size (a copy cut short; a new user's
    finding: it was passed over in silence, the offline message then said to save the file
    where it already was, and online it would have been replaced): one line naming it, the
    file left as it is, nothing fetched."""
    dest = tmp_path / "weights.h5"
    dest.write_bytes(PAYLOAD[:10]) if kind == "short" else dest.mkdir()
    Handler.requests.clear()
    with pytest.raises(dl.DownloadError) as info:
        fetch(server, tmp_path, "good.h5")
    what = "10 bytes" if kind == "short" else "a folder"
    assert str(info.value) == (f"{dest} is there but is not the file to download ({what}; "
                               f"the download is {len(PAYLOAD):,} bytes): a copy cut short, "
                               "or another file of that name. Delete it to download again, "
                               "or pass --weights PATH")
    assert Handler.requests == [] and leftovers(tmp_path) == ["weights.h5"]
    assert kind == "folder" or dest.read_bytes() == PAYLOAD[:10]


def test_two_concurrent_downloads_fetch_once(server, tmp_path):
    Handler.requests.clear()
    results, errors = [], []

    def run():
        try:
            results.append(fetch(server, tmp_path, "slow.h5"))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 2 and results[0] == results[1]
    assert Handler.requests == ["/slow.h5"]  # the second waited on the lock, then reused
    assert leftovers(tmp_path) == ["weights.h5"]


def test_official_weights_uses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VGGNP_HOME", str(tmp_path))
    assert dl.cache_dir() == str(tmp_path)
    cached = tmp_path / dl.FILENAME
    with open(cached, "wb") as f:
        f.truncate(dl.SIZE)  # a sparse file of the right size
    assert dl.official_weights() == str(cached)


def test_killed_download_leaves_no_usable_file(server, tmp_path):
    """kill -9 in the middle of a download: the next run ignores and removes the partial
    file, downloads again and verifies."""
    dest = tmp_path / "weights.h5"
    code = (f"from vggnp.files import download as dl; dl.download({server + '/crawl.h5'!r}, "
            f"{str(dest)!r}, {len(PAYLOAD)}, {MD5!r}, progress=False)")
    child = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until some bytes are on disk
        parts = [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
        if parts and parts[0].stat().st_size > len(PAYLOAD) // 16:
            break
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    parts = [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]
    assert len(parts) == 1 and not dest.exists()  # killed: no cleanup ran, nothing renamed
    assert 0 < (tmp_path / parts[0]).stat().st_size < len(PAYLOAD)
    path = fetch(server, tmp_path, "good.h5")
    with open(path, "rb") as f:
        assert f.read() == PAYLOAD
    assert leftovers(tmp_path) == ["weights.h5"]  # the partial file is gone


def test_unwritable_cache_says_what_to_do(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    if os.geteuid() != 0:  # a read-only folder (root writes anywhere, so not for root)
        readonly = tmp_path / "readonly"
        readonly.mkdir(mode=0o555)
        with pytest.raises(dl.DownloadError, match="cannot write to the weights cache"):
            dl.download("http://127.0.0.1:9/x.h5", str(readonly / "w.h5"), 1, "0")
    monkeypatch.setenv("VGGNP_HOME", str(blocker / "vggnp"))  # under a file: never writable
    with pytest.raises(dl.DownloadError) as info:
        dl.official_weights()
    text = str(info.value)
    assert "cannot write to the weights cache" in text and "VGGNP_HOME" in text
    assert "--weights" in text


def official_stand_in(tmp_path, monkeypatch):
    """A small file posing as the official one (its size and md5 patched in)."""
    monkeypatch.setenv("VGGNP_HOME", str(tmp_path / "cache"))
    path = tmp_path / "stand_in.h5"
    path.write_bytes(PAYLOAD)
    monkeypatch.setattr(official, "SIZE", len(PAYLOAD))
    monkeypatch.setattr(official, "MD5", MD5)
    return path


def test_official_file_md5_checked_once_per_change(tmp_path, monkeypatch):
    path = official_stand_in(tmp_path, monkeypatch)
    hashed = []
    real_md5 = official.file_md5
    monkeypatch.setattr(official, "file_md5", lambda p: hashed.append(p) or real_md5(p))
    assert official.is_official(str(path)) and official.official_md5_ok(str(path))
    assert official.official_md5_ok(str(path)) and len(hashed) == 1  # remembered
    data = bytearray(PAYLOAD)
    data[1000] ^= 0x01  # one flipped bit; same size
    path.write_bytes(bytes(data))
    assert not official.official_md5_ok(str(path)) and len(hashed) == 2


def test_official_md5_without_a_writable_cache(tmp_path, monkeypatch):
    path = official_stand_in(tmp_path, monkeypatch)
    (tmp_path / "cache" / "verified.json").mkdir(parents=True)  # cannot be read or replaced
    assert official.official_md5_ok(str(path)) and official.official_md5_ok(str(path))
