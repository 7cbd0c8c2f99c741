"""TLS and SCRAM material of the local Apache Kafka broker: a throwaway CA and broker key made
once with the openssl tool, and the SCRAM user's generated password, all private to the state dir.

    <base>/credentials.json     SCRAM user and password (0600)
    <base>/tls/ca.pem           the CA certificate clients trust
    <base>/tls/broker.pem       the broker's PEM keystore: key, certificate, CA (0600)
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lakehouse.core.errors import ServiceError
from lakehouse.services.process import write_private


@dataclass(frozen=True)
class BrokerSecrets:
    base: Path
    user: str = "lakehouse"

    @property
    def ca_path(self) -> Path:
        return self.base / "tls" / "ca.pem"

    @property
    def keystore_path(self) -> Path:
        return self.base / "tls" / "broker.pem"

    @property
    def credentials_path(self) -> Path:
        return self.base / "credentials.json"

    def credentials(self) -> dict[str, str]:
        """{"username", "password"} of the SCRAM user (made on the first SASL start)."""
        data = self.scram(create=False)
        return {"username": data["username"], "password": data["password"]}

    def scram(self, *, create: bool) -> dict[str, str]:
        try:
            data: dict[str, str] = json.loads(self.credentials_path.read_text())
            if {"username", "password"} <= data.keys():
                return data
        except (OSError, ValueError):
            if not create:
                raise ServiceError(
                    f"no Kafka SCRAM credentials at {self.credentials_path}: start the broker with a "
                    "SASL_SSL port first"
                ) from None
        data = {
            "username": self.user,
            "password": secrets.token_hex(16),  # hex: safe inside the storage tool's --add-scram syntax
        }
        write_private(self.credentials_path, json.dumps(data, indent=2) + "\n")
        return data

    def ensure_tls(self) -> None:
        """A throwaway CA and a broker key and certificate for 127.0.0.1/localhost, made once with
        the openssl command-line tool; the broker reads them as a PEM keystore."""
        self.scram(create=True)
        if self.ca_path.is_file() and self.keystore_path.is_file():
            return
        openssl = shutil.which("openssl")
        if openssl is None:
            raise ServiceError(
                "`openssl` is not on PATH: install Debian package openssl (needed for the TLS keys)"
            )
        tls = self.ca_path.parent
        tls.mkdir(parents=True, exist_ok=True)
        ca_key, key, csr, cert, ext = (
            tls / n for n in ("ca.key", "broker.key", "broker.csr", "broker.crt", "san.cnf")
        )
        for stale in (ca_key, key, csr, cert, ext, self.keystore_path, self.ca_path):
            stale.unlink(missing_ok=True)
        ext.write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
            "keyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\n"
            "basicConstraints=critical,CA:FALSE\n"
        )
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-noenc"]
        steps = [
            ["req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(self.ca_path), "-days", "3650",
             "-subj", "/CN=lakehouse local Kafka CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ["req", "-new", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost"],
            ["x509", "-req", "-in", str(csr), "-CA", str(self.ca_path), "-CAkey", str(ca_key),
             "-CAcreateserial", "-out", str(cert), "-days", "825", "-extfile", str(ext)],
        ]  # fmt: skip
        try:
            for step in steps:
                proc = subprocess.run(
                    [openssl, *step], capture_output=True, text=True, timeout=60, cwd=tls, check=False
                )
                if proc.returncode != 0:
                    msg = (proc.stderr or proc.stdout).strip().splitlines()
                    raise ServiceError(f"openssl {step[0]} failed: {msg[-1] if msg else proc.returncode}")
            # PEM keystore for the broker: unencrypted PKCS#8 key, then the chain (broker, CA)
            write_private(self.keystore_path, key.read_text() + cert.read_text() + self.ca_path.read_text())
        except BaseException:
            for partial in (self.keystore_path, self.ca_path):
                partial.unlink(missing_ok=True)
            raise
        finally:
            # the CA key is not needed again: a new state dir makes a new CA
            for tmp in (ca_key, key, csr, cert, ext, tls / "ca.srl"):
                tmp.unlink(missing_ok=True)
