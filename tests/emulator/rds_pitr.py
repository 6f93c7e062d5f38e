"""RDS's point-in-time restore, for real, in moto: `RestoreDBInstanceToPointInTime` of an instance that a real
PostgreSQL stands in for yields a second, real PostgreSQL holding the data AS IT WAS at the restore time, and the
restored instance's described endpoint is that server. Installed into moto (by `elasticache_export.py`, the
launcher the export-capable and the recording servers run) before its server starts; nothing else of moto is
changed, so its recorder records these calls like any other.

Why WAL replay and not a copy a test writes by hand: `lifeboat recover` must prove it brings back the rows of a
moment between two changes, and only PostgreSQL's own recovery can say what the database held at a time. It is
how RDS itself restores to a point in time (the newest backup before the time, then the archived WAL replayed to
it), so the emulator's answer is PostgreSQL's, never the test's:

- The stand-in is a real server with WAL archiving (`archive_command` copies each finished segment into an
  archive directory) and a base backup taken with `pg_basebackup` when the test set it up: `stand-ins-pitr.json`
  in the state directory (instance id -> {bin, base, archive, port, user, password, uid, gid}), written by
  `Moto::stand_in_pitr` in `tests/src/moto.rs`.
- On the restore, the source is made to write a commit after the restore time and to switch to a new WAL segment
  (`txid_current()`, `pg_switch_wal()`: RDS ships WAL every five minutes, which is why its latest restorable time
  lags; here the lag is removed by force), and the emulator waits until that segment is archived. Recovery needs
  a commit after the target to know it has reached it.
- The base backup is copied into a new data directory with `recovery.signal`, `restore_command` reading the
  archive, `recovery_target_time` the requested time (or none: the latest restorable time, the end of the
  archive) and `recovery_target_action = 'promote'`; the server starts on a free port and is waited for until it
  has left recovery. A time before the base backup is refused as AWS refuses a time outside the restorable
  window (`InvalidParameterValue`).
- The restored instance is described at `127.0.0.1:<port>`. Its master user is the source's; its password the
  one the data held at that time, as on RDS, until `ModifyDBInstance` sets `MasterUserPassword`: then the
  emulator runs `ALTER ROLE ... PASSWORD` on the restored server, as RDS does.
- `DeleteDBInstance` of a restored instance stops its server (immediately) and removes its directory.

An instance without a stand-in restores as moto restores it (no server). Aurora clusters are not emulated.

Usage: `install(state_dir)`, then start moto's server.
"""

import datetime
import json
import os
import shutil
import socket
import subprocess
import threading
import time

from moto.rds.exceptions import InvalidParameterValue
from moto.rds.models import DBInstance, RDSBackend

STAND_INS = "stand-ins-pitr.json"
# One recovery at a time: the source's forced WAL switch and the copy of the base backup are not shared.
REPLAYING = threading.Lock()
# Restored instance id -> its server: {"data", "dir", "bin", "port", "user", "password", "uid", "gid"}.
RESTORED = {}


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_server_user(stand):
    """Runs a PostgreSQL tool as the server's unprivileged user when moto runs as root (PostgreSQL refuses root)."""
    uid, gid = stand.get("uid"), stand.get("gid")
    if uid is None:
        return None

    def demote():
        os.setgid(gid)
        os.setuid(uid)

    return demote


def psql(stand, port, sql, user=None, password=None):
    out = subprocess.run(
        [os.path.join(stand["bin"], "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
         "-h", "127.0.0.1", "-p", str(port), "-U", user or stand["user"], "-d", "postgres", "-c", sql],
        env={**os.environ, "PGPASSWORD": password or stand["password"], "PGCONNECT_TIMEOUT": "5"},
        capture_output=True, text=True, timeout=60,
    )
    if out.returncode != 0:
        raise RuntimeError(f"psql on port {port}: {out.stderr.strip()}")
    return out.stdout.strip()


def restore_time(overrides):
    """The requested time (aware, UTC), or None for the latest restorable time."""
    at = overrides.get("RestoreTime")
    if at is None or overrides.get("UseLatestRestorableTime"):
        return None
    if isinstance(at, str):
        at = datetime.datetime.fromisoformat(at.replace("Z", "+00:00"))
    if at.tzinfo is None:
        at = at.replace(tzinfo=datetime.timezone.utc)
    return at.astimezone(datetime.timezone.utc)


def archive_past_now(stand):
    """A commit after every time asked so far, in a segment that is archived before this returns."""
    psql(stand, stand["port"], "select txid_current()")
    segment = psql(stand, stand["port"], "select pg_walfile_name(pg_switch_wal())")
    deadline = time.time() + 60
    while not os.path.exists(os.path.join(stand["archive"], segment)):
        if time.time() > deadline:
            raise RuntimeError(f"WAL segment {segment} was not archived within a minute")
        time.sleep(0.1)


def replay(stand, target, at):
    """A new server from the base backup and the archive, recovered to `at` (or to the end), promoted; its port."""
    if at is not None and at.timestamp() < stand["base_time"]:
        raise InvalidParameterValue(
            f"The restore time {at.isoformat()} is before the earliest restorable time of the source instance."
        )
    archive_past_now(stand)
    top = os.path.join(stand["state"], "pitr", target)
    shutil.rmtree(top, ignore_errors=True)
    data = os.path.join(top, "data")
    shutil.copytree(stand["base"], data, symlinks=True)
    os.chmod(data, 0o700)
    port = free_port()
    with open(os.path.join(data, "recovery.signal"), "w"):
        pass
    settings = {
        "restore_command": f"cp {stand['archive']}/%f \"%p\"",
        "recovery_target_action": "promote",
        "archive_mode": "off",
        "port": str(port),
        "listen_addresses": "127.0.0.1",
        "unix_socket_directories": top,
    }
    if at is not None:
        settings["recovery_target_time"] = at.strftime("%Y-%m-%d %H:%M:%S.%f+00")
    with open(os.path.join(data, "postgresql.auto.conf"), "a") as f:
        for key, value in settings.items():
            f.write(f"{key} = '{value}'\n")
    if stand.get("uid") is not None:
        subprocess.run(["chown", "-R", f"{stand['uid']}:{stand['gid']}", top], check=True)
    log = os.path.join(top, "postgres.log")
    started = subprocess.run(
        [os.path.join(stand["bin"], "pg_ctl"), "-D", data, "-l", log, "-w", "-t", "60", "start"],
        preexec_fn=as_server_user(stand), capture_output=True, text=True, cwd=top,
    )
    if started.returncode != 0:
        raise RuntimeError(f"the restored server did not start: {started.stderr}\n{read_text(log)}")
    deadline = time.time() + 60
    while psql(stand, port, "select pg_is_in_recovery()") != "f":
        if time.time() > deadline:
            raise RuntimeError(f"the restored server did not leave recovery: {read_text(log)}")
        time.sleep(0.1)
    RESTORED[target] = {**stand, "data": data, "dir": top, "port": port}
    return port


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def install(state):
    stand_ins = os.path.join(state, STAND_INS)
    original_restore = RDSBackend.restore_db_instance_to_point_in_time
    original_modify = RDSBackend.modify_db_instance
    original_delete = RDSBackend.delete_db_instance
    original_address = DBInstance.address

    def restore(self, source_db_identifier, target_db_identifier, overrides):
        stand = read_json(stand_ins).get(source_db_identifier)
        if stand is None:
            return original_restore(self, source_db_identifier, target_db_identifier, overrides)
        stand = {**stand, "state": state}
        with REPLAYING:
            port = replay(stand, target_db_identifier, restore_time(overrides))
        restored = original_restore(self, source_db_identifier, target_db_identifier, overrides)
        restored.stand_in_address = "127.0.0.1"
        restored.port = port
        return restored

    def modify(self, db_instance_identifier, db_kwargs):
        server = RESTORED.get(db_instance_identifier)
        password = db_kwargs.get("MasterUserPassword")
        if server is not None and password:
            database = self.describe_db_instances(db_instance_identifier)[0]
            user = database.master_username.replace('"', '""')
            quoted = password.replace("'", "''")
            psql(server, server["port"], f"ALTER ROLE \"{user}\" PASSWORD '{quoted}'")
        return original_modify(self, db_instance_identifier, db_kwargs)

    def delete(self, *args, **kwargs):
        deleted = original_delete(self, *args, **kwargs)
        server = RESTORED.pop(deleted.db_instance_identifier, None)
        if server is not None:
            subprocess.run(
                [os.path.join(server["bin"], "pg_ctl"), "-D", server["data"], "-m", "immediate", "-w", "stop"],
                preexec_fn=as_server_user(server), capture_output=True, cwd=server["dir"],
            )
            shutil.rmtree(server["dir"], ignore_errors=True)
        return deleted

    RDSBackend.restore_db_instance_to_point_in_time = restore
    RDSBackend.modify_db_instance = modify
    RDSBackend.delete_db_instance = delete
    DBInstance.address = property(
        lambda self: getattr(self, "stand_in_address", None) or original_address.fget(self)
    )
