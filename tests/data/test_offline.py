"""Without a network, every way to download says so in one line (issue 17): the URL, the
error, and where to put the file by hand. The network is cut by making ``urlopen`` fail as it
does without DNS, or by pointing a dataset at a local port where nothing listens."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest

import googlenet
from minigrad.data import CIFAR10, MNIST, DownloadError, download_url, get_dataset
from minigrad.data.__main__ import main as data_main

NO_DNS = "[Errno -2] Name or service not known"


@pytest.fixture
def offline(monkeypatch):
    def fail(*args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(urllib.request, "urlopen", fail)


def closed_port() -> int:
    with socket.socket() as s:  # a port that was free a moment ago: connecting is refused
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_line(text: str) -> str:
    lines = [s for s in text.strip().split("\n") if s.strip()]
    assert len(lines) == 1, text
    return lines[0]


def test_download_url_without_a_network_names_the_url_the_error_and_the_place(tmp_path, offline):
    dest = tmp_path / "sub" / "file.tgz"
    with pytest.raises(DownloadError) as e:
        download_url("https://example.org/file.tgz", dest, progress=False)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"cannot download https://example.org/file.tgz ({NO_DNS}); ")
    assert msg.endswith(f"copy it to {dest}")
    assert list(dest.parent.iterdir()) == []  # no partial file


def test_a_refused_connection_is_one_line_too(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/cifar-10-python.tar.gz"
    with pytest.raises(DownloadError, match=r"cannot download http://127\.0\.0\.1:\d+/cifar.*"
                       r"refused.*copy it to "):  # fmt: skip
        download_url(url, tmp_path / "c.tar.gz", progress=False)


def test_get_dataset_download_without_a_network(tmp_path, offline):
    with pytest.raises(DownloadError) as e:
        get_dataset("cifar10", root=tmp_path, download=True)
    assert str(e.value) == (
        f"cannot download {CIFAR10.url} ({NO_DNS}); without a network, fetch it on a machine "
        f"that has one and copy it to {tmp_path / 'cifar-10-python.tar.gz'}"
    )


def test_mnist_says_where_all_four_files_go(tmp_path, offline):
    with pytest.raises(DownloadError) as e:
        get_dataset("mnist", root=tmp_path, download=True)
    msg = str(e.value)
    assert "\n" not in msg and MNIST.base_url in msg
    assert msg.endswith(f"all go in {tmp_path / 'mnist'}")
    assert "t10k-labels-idx1-ubyte.gz" in msg


def test_python_m_minigrad_data_download_is_one_line(tmp_path, offline, capsys):
    assert data_main(["download", "imagenette", "--root", str(tmp_path)]) == 2
    err = one_line(capsys.readouterr().err)
    assert err.startswith("error: cannot download https://")
    assert "imagenette2-160.tgz" in err and NO_DNS in err
    assert err.endswith(f"copy it to {tmp_path / 'imagenette2-160.tgz'}")


def test_the_training_command_with_download_is_one_line(tmp_path, offline, capsys):
    argv = ["train", "--dataset", "cifar10", "--download", "--data-dir", str(tmp_path / "d"),
            "--out", str(tmp_path / "run"), "--epochs", "1"]  # fmt: skip
    assert googlenet.main(argv) == 2
    captured = capsys.readouterr()
    err = one_line(captured.err)
    assert err == (
        f"error: cannot download {CIFAR10.url} ({NO_DNS}); without a network, fetch it on a "
        f"machine that has one and copy it to {tmp_path / 'd' / 'cifar-10-python.tar.gz'}"
    )
