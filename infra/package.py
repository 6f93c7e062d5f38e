"""Two small steps of `make package` and `make deploy` that the shell does badly (see the Makefile).

    python3 infra/package.py zip <out.zip> <binary>
        A Lambda zip: the binary as an executable `bootstrap` at the root, with a fixed date, so that the same
        binary always makes the same zip (`sam deploy` uploads a zip only when its checksum changed).

    python3 infra/package.py overrides <samconfig.toml> <env> [--has]
        The parameter overrides `sam deploy --guided` saved for <env>, in SAM's own quoting, without the build's
        (ImageRepository, ImageDigest, Architecture), which `make deploy` passes afresh on every deploy; with --has,
        exits 0 when a PlanBucket was saved (the first deploy was made) and 1 when not.
"""

import re
import sys
import tomllib
import zipfile

BUILD_PARAMETERS = {"ImageRepository", "ImageDigest", "Architecture"}
# Key=value as SAM writes it: a double-quoted value with backslash escapes, a single-quoted one, or a bare word.
OVERRIDE = re.compile(r"""(\w+)=("(?:[^"\\]|\\.)*"|'[^']*'|\S+)""")


def zip_bootstrap(out: str, binary: str) -> None:
    with open(binary, "rb") as f:
        data = f.read()
    info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o100755 << 16  # a regular file, rwxr-xr-x: Lambda executes it
    info.create_system = 3  # Unix, so that the mode above is honoured
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(out, "w") as z:
        z.writestr(info, data)


def saved_overrides(samconfig: str, env: str) -> list[tuple[str, str]]:
    try:
        with open(samconfig, "rb") as f:
            config = tomllib.load(f)
    except FileNotFoundError:
        return []
    saved = config.get(env, {}).get("deploy", {}).get("parameters", {}).get("parameter_overrides", "")
    if isinstance(saved, list):
        saved = " ".join(saved)
    return OVERRIDE.findall(saved)


def main(argv: list[str]) -> int:
    if argv[:1] == ["zip"] and len(argv) == 3:
        zip_bootstrap(argv[1], argv[2])
        return 0
    if argv[:1] == ["overrides"] and len(argv) in (3, 4):
        pairs = saved_overrides(argv[1], argv[2])
        if argv[3:] == ["--has"]:
            return 0 if any(k == "PlanBucket" for k, _ in pairs) else 1
        print(" ".join(f"{k}={v}" for k, v in pairs if k not in BUILD_PARAMETERS))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
