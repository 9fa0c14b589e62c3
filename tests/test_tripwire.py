import socket

import pytest

from tests.conftest import NetworkTripwire


def test_tripwire_refuses_non_loopback() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(NetworkTripwire):
            s.connect(("192.0.2.1", 80))  # TEST-NET-1: would never be reached anyway
    finally:
        s.close()


def test_tripwire_allows_loopback() -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        c.connect(srv.getsockname())
        conn, _ = srv.accept()
        conn.close()
    finally:
        c.close()
        srv.close()
