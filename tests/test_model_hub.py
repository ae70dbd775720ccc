"""The hub check of :func:`tdmixup.model.classifier.resolve_model_path`, through
``huggingface_hub``: a mirror that refuses connections fails within seconds and is named, a proxy
carries the request, a cached model loads without the network, and the process's environment is
never changed."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tdmixup.model.classifier import ModelLoadError, resolve_model_path  # noqa: E402

REPO_ID = "tdmixup-tests/tiny-bert"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _closed_port() -> int:
    """A local port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


HUB_MAJOR = int(importlib.metadata.version("huggingface_hub").split(".")[0])


def _close_session() -> None:
    """Drop ``huggingface_hub``'s HTTP client, so the next request builds one that reads the
    environment (``close_session`` from 1.0; ``reset_sessions`` before, with requests)."""
    try:
        from huggingface_hub import close_session
    except ImportError:  # huggingface_hub < 1.0
        from huggingface_hub.utils import reset_sessions as close_session
    close_session()


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Offline mode off (the suite runs with HF_HUB_OFFLINE=1), no proxy, an empty HF cache
    (returned); ``huggingface_hub``'s HTTP client is rebuilt so it reads this environment."""
    from huggingface_hub import constants

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_ETAG_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    cache = tmp_path / "hf_cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    _close_session()
    yield cache
    _close_session()  # the next user builds a client from its own environment


def _cache_model(cache: Path, model_dir: Path) -> Path:
    """Put ``model_dir`` into the Hugging Face cache layout as ``REPO_ID`` at ``main``."""
    repo = cache / f"models--{REPO_ID.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    shutil.copytree(model_dir, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


def test_a_mirror_that_refuses_connections_fails_fast_and_is_named(
    online: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("HF_ENDPOINT", mirror)
    before = dict(os.environ)
    start = time.perf_counter()
    with pytest.raises(ModelLoadError) as err:
        resolve_model_path(REPO_ID)
    # huggingface_hub < 1.0 retries a refused connection with backoff (about 25 s here)
    assert time.perf_counter() - start < (5 if HUB_MAJOR >= 1 else 60)
    message = str(err.value)
    assert "not in the local Hugging Face cache" in message and f"hub at {mirror}" in message
    assert ("ConnectError" if HUB_MAJOR >= 1 else "ConnectionError") in message
    assert "\n" not in message
    assert dict(os.environ) == before  # HF_HUB_OFFLINE is not set for the rest of the process


def test_a_cached_model_loads_without_the_network(
    online: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from _tiny import build_tiny_model_dir, quiet_libraries, require_minilm
    from tdmixup.core.config import ModelConfig
    from tdmixup.model.classifier import build_classifier

    require_minilm()
    quiet_libraries()
    snapshot = _cache_model(online, build_tiny_model_dir(tmp_path / "tiny"))
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    before = dict(os.environ)
    assert resolve_model_path(REPO_ID) == str(snapshot)
    model = build_classifier(ModelConfig(name_or_path=REPO_ID), "pair", 3)
    assert model.head.out_features == 3
    assert dict(os.environ) == before
    # HF_HUB_OFFLINE=1: the cache, without asking the hub at all
    import huggingface_hub

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("HF_HUB_OFFLINE=1 must not ask the hub")

    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", no_network)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model_path(REPO_ID) == str(snapshot)


class _Recorder(BaseHTTPRequestHandler):
    """Answers every HEAD with 404 (the hub's answer for an unknown model), recording it."""

    seen: list[tuple[str, str]] = []

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
        self.seen.append((self.path, self.headers.get("Host", "")))
        self.send_response(404)
        self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_server() -> Iterator[str]:
    """An HTTP server on a free local port (its URL); the requests are in ``_Recorder.seen``."""
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_mirror_that_answers_gets_the_name(
    online: Path, monkeypatch: pytest.MonkeyPatch, local_server: str
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", local_server)
    assert resolve_model_path(REPO_ID) == REPO_ID  # from_pretrained downloads (or reports 404)
    assert [path for path, _ in _Recorder.seen] == [f"/{REPO_ID}/resolve/main/config.json"]


def test_the_request_goes_through_the_proxy(
    online: Path, monkeypatch: pytest.MonkeyPatch, local_server: str
) -> None:

    monkeypatch.setenv("HF_ENDPOINT", "http://hub-mirror.invalid")  # resolvable only by a proxy
    monkeypatch.setenv("HTTP_PROXY", local_server)
    _close_session()  # the hub's HTTP client reads the proxy settings when it is made
    assert resolve_model_path(REPO_ID) == REPO_ID
    assert _Recorder.seen == [
        (f"http://hub-mirror.invalid/{REPO_ID}/resolve/main/config.json", "hub-mirror.invalid")
    ]
