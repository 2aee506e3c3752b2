#!/usr/bin/env python3
"""Builds a platform wheel of the gran package with a shared library inside it.

    python bindings/python/build_wheel.py --library target/release/libgran_runtime.so --out target/wheels

The wheel holds the package (gran/*.py), the library as gran/<its file name> (where the package
looks first), and gran-<version>.dist-info with METADATA, WHEEL and RECORD, everything read from
pyproject.toml and README.md beside this script. The standard library alone does the work
(zipfile, hashlib, base64): no setuptools, no wheel package, no network.

The library must be self-contained (libgran_runtime is: libc, libm and libgcc_s only). Its tag is
py3-none-<platform>: the package is pure Python (ctypes), so any Python 3 ABI loads it, and the
platform is the library's. On Linux the platform is the manylinux tag the library qualifies for
(PEP 600): manylinux_2_<N>_<arch>, N the newest glibc symbol version it needs (at least 17),
found the way auditwheel finds it, from the ELF version-needs section; a library that needs a
shared library outside the manylinux set is refused (--plat overrides the check and the tag).
Entries are written in a fixed order with a fixed time (SOURCE_DATE_EPOCH when set), so the same
inputs give the same wheel, byte for byte.
"""

from __future__ import annotations

import argparse
import base64
import ctypes
import hashlib
import importlib.util
import os
import re
import struct
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = "gran"

# Shared libraries every manylinux system has (PEP 600 / auditwheel's policy), and the dynamic
# loaders, which auditwheel does not count.
MANYLINUX_LIBS = {
    "libc.so.6", "libm.so.6", "libgcc_s.so.1", "libpthread.so.0", "libdl.so.2", "librt.so.1",
    "libutil.so.1", "libresolv.so.2", "libnsl.so.1", "libstdc++.so.6",
}
LOADERS = re.compile(r"^(ld-linux.*|ld64)\.so\.\d+$")
# e_machine -> the architecture in wheel platform tags
ARCHES = {3: "i686", 62: "x86_64", 183: "aarch64", 21: "ppc64le", 22: "s390x", 243: "riscv64"}
# libgcc_s symbol versions the manylinux policies allow: up to GCC_4.8.0 before glibc 2.28
# (manylinux2014's toolchain), up to GCC_7.0.0 from manylinux_2_28 on.
GCC_LIMITS = (((2, 28), (7, 0, 0)), ((0, 0), (4, 8, 0)))


# ----------------------------------------------------------------------------------------------
# pyproject.toml
# ----------------------------------------------------------------------------------------------


def read_project(path: Path) -> dict:
    """The [project] table of pyproject.toml (tomllib; a minimal reader before Python 3.11)."""
    text = path.read_text(encoding="utf-8")
    try:
        import tomllib
    except ImportError:
        return _read_project_minimal(text)
    return tomllib.loads(text)["project"]


def _read_project_minimal(text: str) -> dict:
    """Reads `key = "string"`, `key = ["a", "b"]` and `key = {text = "..."}` lines of [project]
    and its subtables: all this pyproject.toml uses."""
    project: dict = {}
    table = None
    for raw in text.splitlines():
        line = raw.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^\[([^\]]+)\]$", line)
        if m:
            name = m.group(1).strip()
            if name == "project":
                table = project
            elif name.startswith("project."):
                table = project.setdefault(name[len("project."):], {})
            else:
                table = None
            continue
        if table is None or "=" not in line:
            continue
        key, value = (s.strip() for s in line.split("=", 1))
        if value.startswith("["):
            table[key] = re.findall(r'"([^"]*)"', value)
        elif value.startswith("{"):
            table[key] = dict(re.findall(r'(\w+)\s*=\s*"([^"]*)"', value))
        else:
            table[key] = value.strip('"')
    return project


# ----------------------------------------------------------------------------------------------
# The library: ELF dependencies, glibc versions, platform tag
# ----------------------------------------------------------------------------------------------


def elf_facts(data: bytes) -> dict:
    """The architecture, DT_NEEDED libraries and needed symbol versions of an ELF64
    little-endian shared library: {"arch", "needed": [...], "versions": {file: [names]}}."""
    if data[:4] != b"\x7fELF":
        raise ValueError("not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    (machine,) = struct.unpack_from("<H", data, 0x12)
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, _shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]

    def string(strtab_index: int, offset: int) -> str:
        base = sections[strtab_index][4] + offset
        return data[base:data.index(b"\0", base)].decode("ascii", "replace")

    needed, versions = [], {}
    for _name, sh_type, _flags, _addr, offset, size, link, info, _align, _entsize in sections:
        if sh_type == 6:  # SHT_DYNAMIC
            for pos in range(offset, offset + size, 16):
                tag, val = struct.unpack_from("<qQ", data, pos)
                if tag == 0:
                    break
                if tag == 1:  # DT_NEEDED
                    needed.append(string(link, val))
        elif sh_type == 0x6FFFFFFE:  # SHT_GNU_verneed
            pos = offset
            for _ in range(info):
                _ver, cnt, file_, aux, next_ = struct.unpack_from("<HHIII", data, pos)
                names = versions.setdefault(string(link, file_), [])
                apos = pos + aux
                for _ in range(cnt):
                    _hash, _flags2, _other, name, anext = struct.unpack_from("<IHHII", data, apos)
                    names.append(string(link, name))
                    apos += anext
                if not next_:
                    break
                pos += next_
    return {"arch": ARCHES.get(machine), "needed": needed, "versions": versions}


def _newest(names, prefix: str) -> tuple:
    best = ()
    for n in names:
        if n.startswith(prefix):
            try:
                best = max(best, tuple(int(x) for x in n[len(prefix):].split(".")))
            except ValueError:
                pass
    return best


def manylinux_tag(facts: dict) -> str:
    """The PEP 600 platform tag(s) of a library (see the module's docstring); ValueError for one
    that no manylinux tag fits."""
    arch = facts["arch"]
    if arch is None:
        raise ValueError("an architecture without manylinux tags")
    outside = [n for n in facts["needed"] if n not in MANYLINUX_LIBS and not LOADERS.match(n)]
    if outside:
        raise ValueError(f"it needs {', '.join(outside)}, which manylinux systems need not have: "
                         "bundle a self-contained library (libgran_runtime), or give --plat")
    all_names = [v for names in facts["versions"].values() for v in names]
    glibc = max(_newest(all_names, "GLIBC_")[:2], (2, 17))
    gcc = _newest(all_names, "GCC_")
    limit = next(lim for since, lim in GCC_LIMITS if glibc >= since)
    if gcc > limit:
        raise ValueError(f"it needs libgcc_s GCC_{'.'.join(map(str, gcc))}, newer than manylinux_{glibc[0]}_"
                         f"{glibc[1]} allows: give --plat")
    tag = f"manylinux_{glibc[0]}_{glibc[1]}_{arch}"
    if glibc == (2, 17):  # the PEP 599 alias, for pip before 20.3
        tag += f".manylinux2014_{arch}"
    return tag


def check_library(path: Path, runtime_functions, abi: int) -> None:
    """Loads the library (when it is for this machine) and checks that it has every function
    the package needs and the package's ABI version."""
    try:
        lib = ctypes.CDLL(str(path.resolve()))
    except OSError as e:
        print(f"build_wheel: cannot load {path} here ({e}): its functions are not checked", file=sys.stderr)
        return
    missing = sorted(n for n in runtime_functions if not hasattr(lib, n))
    if missing:
        raise SystemExit(f"build_wheel: {path} lacks {', '.join(missing)}: not libgran_runtime or libgran")
    lib.gran_abi_version.restype = ctypes.c_uint32
    if lib.gran_abi_version() != abi:
        raise SystemExit(f"build_wheel: {path} has ABI version {lib.gran_abi_version()}; the package has {abi}")


# ----------------------------------------------------------------------------------------------
# The wheel
# ----------------------------------------------------------------------------------------------


def record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def metadata(project: dict, readme: str) -> str:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {project['version']}",
    ]
    if project.get("description"):
        lines.append(f"Summary: {project['description']}")
    lic = project.get("license")
    if isinstance(lic, dict) and lic.get("text"):
        lines.append(f"License: {lic['text']}")
    elif isinstance(lic, str):
        lines.append(f"License: {lic}")
    if project.get("requires-python"):
        lines.append(f"Requires-Python: {project['requires-python']}")
    for dep in project.get("dependencies", []):
        lines.append(f"Requires-Dist: {dep}")
    for extra, deps in project.get("optional-dependencies", {}).items():
        lines.append(f"Provides-Extra: {extra}")
        for dep in deps:
            lines.append(f'Requires-Dist: {dep}; extra == "{extra}"')
    lines.append("Description-Content-Type: text/markdown")
    return "\n".join(lines) + "\n\n" + readme


def build(library: Path, out_dir: Path, plat: str | None) -> Path:
    project = read_project(HERE / "pyproject.toml")
    name, version = project["name"], project["version"]
    if not re.fullmatch(r"[A-Za-z0-9.]+", version):
        raise SystemExit(f"build_wheel: version {version!r} is not a plain release number")

    spec = importlib.util.spec_from_file_location("_gran_lib_for_wheel", HERE / PACKAGE / "_lib.py")
    lib_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lib_module)
    bundled_names = lib_module._NAMES + lib_module._RUNTIME_NAMES
    if library.name not in bundled_names:
        raise SystemExit(f"build_wheel: {library.name} is not a name the package looks for next to itself "
                         f"({', '.join(bundled_names)})")
    lib_bytes = library.read_bytes()  # follows a symbolic link
    check_library(library, lib_module.RUNTIME_FUNCTIONS, lib_module.GRAN_ABI_VERSION)
    if plat is None:
        if not sys.platform.startswith("linux"):
            raise SystemExit("build_wheel: the platform tag is derived for Linux ELF libraries only: give --plat")
        try:
            plat = manylinux_tag(elf_facts(lib_bytes))
        except ValueError as e:
            raise SystemExit(f"build_wheel: {library} cannot go into a manylinux wheel: {e}")

    dist = re.sub(r"[-_.]+", "_", name).lower()
    tags = [f"py3-none-{p}" for p in plat.split(".")]
    wheel_name = f"{dist}-{version}-py3-none-{plat}.whl"
    info = f"{dist}-{version}.dist-info"

    files = []  # (archive name, bytes, executable)
    for py in sorted((HERE / PACKAGE).glob("*.py")):
        files.append((f"{PACKAGE}/{py.name}", py.read_bytes(), False))
    files.append((f"{PACKAGE}/{library.name}", lib_bytes, True))
    readme = (HERE / project.get("readme", "README.md")).read_text(encoding="utf-8")
    files.append((f"{info}/METADATA", metadata(project, readme).encode("utf-8"), False))
    wheel_text = "Wheel-Version: 1.0\nGenerator: gran build_wheel.py\nRoot-Is-Purelib: false\n"
    wheel_text += "".join(f"Tag: {t}\n" for t in tags)
    files.append((f"{info}/WHEEL", wheel_text.encode("ascii"), False))
    record = "".join(f"{arc},{record_hash(data)},{len(data)}\n" for arc, data, _ in files)
    record += f"{info}/RECORD,,\n"
    files.append((f"{info}/RECORD", record.encode("utf-8"), False))

    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))  # 1980-01-01, zip's earliest
    stamp = time.gmtime(max(epoch, 315532800))[:6]
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / wheel_name
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".wheel-", suffix=".tmp")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            for arc, data, executable in files:
                zi = zipfile.ZipInfo(arc, date_time=stamp)
                zi.compress_type = zipfile.ZIP_DEFLATED
                zi.external_attr = (0o100755 if executable else 0o100644) << 16
                zf.writestr(zi, data)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp's file is private; a wheel is an ordinary file
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
    return target


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--library", required=True, type=Path,
                    help="the shared library to bundle (target/release/libgran_runtime.so)")
    ap.add_argument("--out", default=Path("target/wheels"), type=Path, help="folder for the wheel")
    ap.add_argument("--plat", help="the platform tag, instead of the one derived from the library")
    args = ap.parse_args(argv)
    if not args.library.is_file():
        print(f"build_wheel: {args.library} not found (make runtime builds libgran_runtime)", file=sys.stderr)
        return 1
    wheel = build(args.library, args.out, args.plat)
    size = wheel.stat().st_size
    print(f"{wheel} ({size} bytes, {size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
