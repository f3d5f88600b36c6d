"""A throwaway PostgreSQL cluster for the tests, from the machine's own binaries."""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path


def find_bin_dir():
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda path: int(Path(path).parent.name))
    return Path(candidates[-1]) if candidates else None


class PostgresCluster:
    """initdb + pg_ctl on a free port in a temporary folder; databases made on demand.

    PostgreSQL refuses to run as root, so as root the cluster runs as 'postgres'.
    """

    def __init__(self, bin_dir, port):
        self.bin_dir = bin_dir
        self.port = port
        self.folder = Path(tempfile.mkdtemp(prefix="agentos-pg-"))
        self.data = self.folder / "data"
        self.as_user = []
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.folder, account.pw_uid, account.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def run(self, *command):
        subprocess.run(self.as_user + list(command), check=True, capture_output=True, text=True)

    def start(self):
        self.run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        self.run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.folder / "log"),
            "-w",
            "start",
        )
        return self

    def create_database(self):
        import psycopg

        name = f"agentos_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self):
        try:
            self.run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
