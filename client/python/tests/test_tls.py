"""tls:// addresses through Python's ssl module against rcstored's TLS
listener (SPEC section 10), with certificates made at test time by
tests/integration/make_certs.sh: verification, a wrong CA, insecure, an
SSLContext of one's own, and mutual TLS with a cert-cn user."""

import hashlib
import os
import ssl
import subprocess

import pytest

import rcstore

MAKE_CERTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tests", "integration", "make_certs.sh")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    r = subprocess.run(["bash", MAKE_CERTS, str(d)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("make_certs.sh failed (no openssl?): " + r.stderr[-300:])
    return d


def test_tls(server_factory, certs):
    s = server_factory(data_dir=False, tls=(str(certs / "srv.pem"), str(certs / "srv.key")))
    ca = str(certs / "ca.pem")
    with rcstore.connect(s.tls_address, tls={"cafile": ca}) as c:
        assert c.address == s.tls_address
        assert c.new(b"over tls").get()["data"] == b"over tls"
        with c.pipeline() as p:  # the interleaved path, over TLS
            for _ in range(5000):
                p.ping()
        assert p.results == ["pong"] * 5000
    # A bare host:port with tls= given is dialled with TLS.
    with rcstore.connect(s.tls_address.removeprefix("tls://"), tls={"cafile": ca}) as c:
        assert c.ping() == "pong"
    # The system's CAs do not know the test CA; nor does another CA.
    with pytest.raises(rcstore.ConnectionFailed, match="certificate"):
        rcstore.connect(s.tls_address)
    with pytest.raises(rcstore.ConnectionFailed, match="certificate"):
        rcstore.connect(s.tls_address, tls={"cafile": str(certs / "other.pem")})
    # The name checked is the address's host unless server_hostname says.
    with pytest.raises(rcstore.ConnectionFailed):
        rcstore.connect(s.tls_address, tls={"cafile": ca, "server_hostname": "example.org"})
    with rcstore.connect(s.tls_address, tls={"cafile": ca, "server_hostname": "localhost"}) as c:
        assert c.ping() == "pong"
    with rcstore.connect(s.tls_address, tls={"insecure": True}) as c:
        assert c.ping() == "pong"
    ctx = ssl.create_default_context(cafile=ca)
    with rcstore.connect(s.tls_address, tls=ctx) as c:
        assert c.ping() == "pong"
    with pytest.raises(ValueError):
        rcstore.connect(s.tls_address, tls={"cafle": ca})


def test_mutual_tls_and_cert_cn_user(server_factory, certs, tmp_path):
    users = tmp_path / "users.ini"
    h = hashlib.sha256(b"atok").hexdigest()
    users.write_text(f"[user alice]\ntoken-sha256 = {h}\nrole = write\ncert-cn = alice\n")
    os.chmod(users, 0o600)
    s = server_factory("--tls-ca-file", str(certs / "ca.pem"), "--users-file", str(users),
                       data_dir=False, tls=(str(certs / "srv.pem"), str(certs / "srv.key")))
    ca = str(certs / "ca.pem")
    # No client certificate: the handshake (or the first read) fails.
    with pytest.raises(rcstore.ConnectionFailed):
        rcstore.connect(s.tls_address, tls={"cafile": ca})
    mine = {"cafile": ca, "certfile": str(certs / "cli.pem"), "keyfile": str(certs / "cli.key")}
    with rcstore.connect(s.tls_address, tls=mine) as c:
        assert c.server_info["user"] == "alice"  # by its certificate, no token
        assert c.new(b"mtls").get()["data"] == b"mtls"
        with pytest.raises(rcstore.PermissionDenied):
            c.gc()
