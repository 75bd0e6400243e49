"""CurveZMQ for device nodes on other hosts: keys, the node (server) side, the app (client) side.

    collector keys keys/ --name station        # the app's keypair: keys/station.key(_secret)
    collector keys keys/ --name glove          # one per remote node; copy glove.key_secret and
                                               # station.key (into authorized/) to the node's host
    python -m devices glove --name glove --endpoint tcp://0.0.0.0:5550 \\
        --curve-secret glove.key_secret --curve-authorized authorized/

and in the app's config::

    [security]
    client_secret = "keys/station.key_secret"
    [[nodes]]
    name = "glove"
    driver = "glove"
    endpoint = "tcp://glovepi.local:5550"
    remote = true                       # started on its own host; the app only connects
    server_key = "keys/glove.key"

A node with ``--curve-secret`` encrypts all three of its sockets and accepts only clients whose
public key is in ``--curve-authorized`` (pyzmq's :class:`zmq.auth.thread.ThreadAuthenticator`):
unknown peers never complete the handshake. A node refuses to bind ``tcp://`` on a non-loopback
address without keys unless told ``--insecure``; ``ipc://`` (the default) stays local and plain.

The client side is process-wide: :func:`configure_client` (the supervisor calls it, and passes
:data:`CURVE_ENV` to the processes it starts) maps each secured base endpoint to its node's public
key, and :func:`connect` (used by every connecting socket in :mod:`collector.wire.bus`) applies it.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import socket as socketlib
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from collector.wire.endpoints import node_endpoints

#: Environment variable that carries the client settings to child processes (JSON).
CURVE_ENV = "COLLECTOR_CURVE"


class SecurityError(ValueError):
    """A key file that is missing or unreadable, or an insecure bind refused."""


def generate_keys(folder: str | Path, name: str) -> tuple[Path, Path]:
    """Write ``folder/name.key`` (public, give it to peers) and ``folder/name.key_secret``
    (keep it on this host, mode 0600). Refuses to overwrite. Returns both paths.

    The secret file is created with mode 0600 in the same system call that creates it
    (``O_CREAT | O_EXCL``; a umask can only narrow it), so no other user can open it even for
    an instant; pyzmq's ``create_certificates`` creates it 0644 and leaves the chmod to us. The
    text is what ``create_certificates`` writes, so ``zmq.auth.load_certificate`` reads it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    if public.exists() or secret.exists():
        raise SecurityError(f"{public} or {secret} exists already; not overwriting keys")
    public_key, secret_key = zmq.curve_keypair()
    _write_new(secret, 0o600, _certificate(public_key, secret_key))
    try:
        _write_new(public, 0o644, _certificate(public_key, None))
    except BaseException:
        secret.unlink(missing_ok=True)
        raise
    return public, secret


def _certificate(public_key: bytes, secret_key: bytes | None) -> bytes:
    """A ZeroMQ certificate in the layout of ``zmq.auth.certs._write_key_file``."""
    kind = "Secret" if secret_key else "Public"
    lines = [f"#   ****  Generated on {datetime.datetime.now()} by pyzmq  ****",
             f"#   ZeroMQ CURVE **{kind}** Certificate",
             "#   " + ("DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions."
                      if secret_key else "Exchange securely, or use a secure mechanism to verify "
                                         "the contents of this file after exchange."),
             "", "metadata", "curve", f'    public-key = "{public_key.decode()}"']
    if secret_key:
        lines.append(f'    secret-key = "{secret_key.decode()}"')
    return ("\n".join(lines) + "\n").encode()


def _write_new(path: Path, mode: int, data: bytes) -> None:
    """Create ``path`` with ``mode`` (never wider), refusing to follow or replace anything."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    except FileExistsError:
        raise SecurityError(f"{path} exists already; not overwriting keys") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def load_public(path: str | Path) -> bytes:
    try:
        public, _ = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise SecurityError(f"cannot read public key {path}: {exc}") from None
    return public


def load_secret(path: str | Path) -> tuple[bytes, bytes]:
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise SecurityError(f"cannot read secret key {path}: {exc}") from None
    if not secret:
        raise SecurityError(f"{path} holds no secret key (give the .key_secret file)")
    return public, secret


def is_local(endpoint: str) -> bool:
    """``ipc://``, or ``tcp://`` on a loopback address (``localhost`` included)."""
    if not endpoint.startswith("tcp://"):
        return True
    host = endpoint[len("tcp://"):].rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name or an interface: resolve it
        try:
            return ipaddress.ip_address(socketlib.gethostbyname(host)).is_loopback
        except OSError:
            return False


class CurveServer:
    """The node side: its keypair and an authenticator admitting only authorized clients."""

    def __init__(self, secret_file: str | Path, authorized: str | Path,
                 context: zmq.Context | None = None) -> None:
        self.public, self.secret = load_secret(secret_file)
        authorized = Path(authorized)
        if not authorized.is_dir() or not list(authorized.glob("*.key")):
            raise SecurityError(f"{authorized}: no client public keys (*.key) to authorize")
        self.context = context or zmq.Context.instance()
        self.auth = ThreadAuthenticator(self.context)
        self.auth.start()
        self.auth.configure_curve(domain="*", location=str(authorized))

    def apply(self, sock: zmq.Socket) -> None:
        """Make ``sock`` a CURVE server; call before ``bind``."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True

    def stop(self) -> None:
        self.auth.stop()


_client: dict | None = None


def configure_client(secret_file: str | Path | None, servers: dict[str, str | Path]) -> str:
    """Use the keypair in ``secret_file`` for every base endpoint in ``servers`` (base endpoint
    -> the node's public key file). Returns the :data:`CURVE_ENV` value for child processes."""
    global _client
    if not servers:
        _client = None
        return ""
    if secret_file is None:
        raise SecurityError("nodes have server_key set but [security] client_secret is empty: "
                            "create one with 'collector keys'")
    public, secret = load_secret(secret_file)

    table = {}
    owner: dict[bytes, str] = {}
    for base, key_file in servers.items():
        server_key = load_public(key_file)
        # The server key is what binds a node's name to its endpoint: a client connecting to
        # node X demands X's key, so only the holder of X's secret can serve as X. Two nodes
        # sharing a key could each serve as the other.
        if server_key in owner and owner[server_key] != base:
            raise SecurityError(f"{owner[server_key]} and {base} have the same server key "
                                f"({key_file}): each node needs a keypair of its own "
                                "(collector keys), or either could serve as the other")
        owner[server_key] = base
        for endpoint in vars(node_endpoints(base)).values():
            table[endpoint] = server_key.decode()
    _client = {"public": public.decode(), "secret": secret.decode(), "servers": table}
    return json.dumps(_client)


def _client_settings() -> dict | None:
    global _client
    if _client is None and os.environ.get(CURVE_ENV):
        _client = json.loads(os.environ[CURVE_ENV])
    return _client


def connect(sock: zmq.Socket, endpoint: str) -> None:
    """Connect ``sock``, as a CURVE client when ``endpoint`` belongs to a secured node. Options
    apply per connection, so one SUB socket can reach secured and plain nodes alike."""
    settings = _client_settings()
    server_key = (settings or {}).get("servers", {}).get(endpoint)
    if server_key:
        sock.curve_secretkey = settings["secret"].encode()
        sock.curve_publickey = settings["public"].encode()
        sock.curve_serverkey = server_key.encode()
    elif sock.get(zmq.MECHANISM) != zmq.NULL:
        sock.set(zmq.PLAIN_SERVER, 0)  # back to the NULL mechanism for this plain endpoint
    sock.connect(endpoint)


def cmd_keys(args) -> int:
    import sys

    try:
        public, secret = generate_keys(args.folder, args.name)
    except SecurityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"public key  {public}   (give to peers: a node's goes into the app's server_key, "
          "the app's into each node's --curve-authorized folder)")
    print(f"secret key  {secret}   (keep on this host only)")
    return 0


def add_commands(subparsers) -> None:
    """Add ``keys`` to the ``collector`` command."""
    keys = subparsers.add_parser("keys", help="create a CurveZMQ keypair for remote nodes")
    keys.add_argument("folder", help="where to write NAME.key and NAME.key_secret")
    keys.add_argument("--name", default=socketlib.gethostname().split(".")[0],
                      help="key name (default: this host's name)")
    keys.set_defaults(func=cmd_keys)
