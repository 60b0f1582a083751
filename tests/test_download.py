"""The weights download, against an HTTP server on 127.0.0.1 started by the test."""

import hashlib
import http.server
import os
import threading
import time

import pytest

from vggnp import download as dl

PAYLOAD = os.urandom(3 * 2**20 + 12345)  # stands in for the 553 MB file
MD5 = hashlib.md5(PAYLOAD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    requests = []

    def do_GET(self):
        Handler.requests.append(self.path)
        if self.path == "/good.h5" or self.path == "/slow.h5":
            body, kind = PAYLOAD, "application/octet-stream"
        elif self.path == "/corrupt.h5":
            body, kind = PAYLOAD[:-1] + b"x", "application/octet-stream"
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
        step = len(body) // 8 if self.path == "/slow.h5" else len(body)
        for i in range(0, len(body), step):
            self.wfile.write(body[i:i + step])
            if self.path == "/slow.h5":
                time.sleep(0.05)

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
    return sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock"))


def test_good_file_is_verified_and_renamed(server, tmp_path, capsys):
    path = fetch(server, tmp_path, "good.h5", progress=True)
    with open(path, "rb") as f:
        assert f.read() == PAYLOAD
    assert leftovers(tmp_path) == ["weights.h5"]
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
    text = str(info.value)
    assert "http://127.0.0.1:9/none.h5" in text and str(tmp_path / "w.h5") in text
    assert "--weights" in text
    assert leftovers(tmp_path) == []


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
