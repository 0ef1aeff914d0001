"""A self-signed certificate for the TLS benchmark, made once with the
openssl command (no network, no cryptography package)."""

import os
import subprocess
import tempfile

DIR = os.path.join(tempfile.gettempdir(), f"fastloop-bench-{os.getuid()}")


def server_cert():
    """(certfile, keyfile) for CN=localhost, made on first use."""
    cert = os.path.join(DIR, "localhost.pem")
    key = os.path.join(DIR, "localhost.key")
    if not (os.path.exists(cert) and os.path.exists(key)):
        os.makedirs(DIR, exist_ok=True)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec",
             "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-days", "3650", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", key + ".tmp", "-out", cert + ".tmp"],
            check=True, capture_output=True)
        os.replace(key + ".tmp", key)
        os.replace(cert + ".tmp", cert)
    return cert, key
