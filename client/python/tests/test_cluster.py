"""The Client at a real three-node cluster on loopback (SPEC section 9,
through tests/integration/cluster.py): NOT_LEADER followed for calls and
pipelines, NotLeader with its hint when told not to follow, and a leased
session resumed on the new leader after the old one is killed."""

import os
import sys

import pytest

import rcstore

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tests", "integration"))
import cluster as harness  # noqa: E402


@pytest.fixture
def three(rcstored):
    if not harness.wants_cluster(rcstored):
        pytest.skip("this rcstored has no cluster mode (--node-id)")
    # 500 ms elections, as test_cluster_py (a loaded machine's leader must
    # not step down under a test for nothing).
    with harness.Cluster(rcstored, n=3, election_ms=500) as cl:
        leader = cl.start()
        yield cl, leader


def test_follows_the_leader_and_resumes_after_a_failover(three):
    cl, leader = three
    followers = [n for n in cl.nodes.values() if n is not leader]
    addresses = [n.url for n in followers] + [leader.url]  # a follower first
    c = rcstore.connect(addresses, ttl=60, failover_timeout=60)
    r = c.new(b"replicated")  # NOT_LEADER from the follower: sent again on the leader
    assert c.address == leader.url
    c.bind("py/r", r)
    with c.pipeline() as p:
        for _ in range(100):
            p.incref(r.id)
    assert p.results[-1] == 101
    assert c.decref(r, 100) == 1
    session = c.session

    leader.kill()
    assert r.get()["data"] == b"replicated"  # reconnected, resumed on the new leader
    new = cl.wait_leader(60)
    assert c.address == new.url and c.session == session and c.reconnects >= 1
    assert c.stat(r)["holds"] == 1 and r.held
    r.release()
    assert c.stat(c.lookup("py/r"))["holds"] == 0
    c.close()


def test_not_leader_when_not_following(three):
    cl, leader = three
    follower = next(n for n in cl.nodes.values() if n is not leader)
    with rcstore.connect(follower.url, failover_timeout=0) as c:
        assert c.ping() == "pong"  # a follower serves ping, hello, stats, cluster
        assert c.cluster()["role"] == "follower"
        with pytest.raises(rcstore.NotLeader) as e:
            c.create(b"x")
        assert e.value.code == "NOT_LEADER" and e.value.leader == leader.url
    # A pipeline sent to a follower: every call moved to the leader.
    with rcstore.connect(follower.url) as c:
        p = c.pipeline()
        p.create(b"a")
        p.create(b"b")
        assert all(isinstance(i, int) for i in p.execute())
        assert c.address == leader.url


def test_the_clients_own_cluster_transfer_then_calls_go_on(three):
    """After its own cluster_transfer the client leaves the old leader
    (which restarts itself as a follower, closing its connections) before
    the next call, so that call never dies with the old connection."""
    cl, leader = three
    c = rcstore.connect([n.url for n in cl.nodes.values()], ttl=60, failover_timeout=60)
    r = c.new(b"before")
    assert c.address == leader.url
    c.cluster_transfer()
    assert c.address is None  # left the old leader: the next call connects
    r2 = c.new(b"after")  # on the new leader: no ConnectionFailed
    assert c.address != leader.url
    assert c.get(r2)["data"] == b"after" and r.get()["data"] == b"before"
    c.close()
