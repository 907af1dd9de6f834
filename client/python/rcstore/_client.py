"""rcstore._client: the blocking Client, Ref and Pipeline (being written;
this skeleton only lets the package import)."""

from ._wire import parse_addresses


class Client:
    def __init__(self, address="127.0.0.1:7373", *, ttl=None, auth=None, user=None, tls=None):
        self.addresses = parse_addresses(address)
        raise NotImplementedError("the sync client is not written yet")


class Ref:
    pass


class Pipeline:
    pass


def connect(address="127.0.0.1:7373", *, ttl=None, auth=None, user=None, tls=None):
    return Client(address, ttl=ttl, auth=auth, user=user, tls=tls)
