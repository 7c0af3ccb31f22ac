"""Build the workfleet images and report their sizes and layers (make image, make image-test).

Contract:

* ``python -m tests.container.images build [--engine docker|podman]`` builds
  ``workfleet:<version>`` from the root ``Dockerfile`` and ``workfleet-examples:<version>`` from
  ``plugins/workfleet-examples/Dockerfile``, then prints each image's size and layers. Without
  ``--engine``: docker when a Docker engine answers, else podman.
* ``python -m tests.container.images standin`` builds, once, a local stand-in for
  ``python:3.11-slim-bookworm`` where no registry is reachable: a ``debootstrap`` bookworm
  minbase with Debian's python3.11 in a venv at ``/usr/local`` (where the official image keeps
  its Python), imported as :data:`STANDIN`. An existing tag is reused, so CI pays for it once.
* With podman, the base is ``$PYTHON_IMAGE`` if set, else :data:`STANDIN` when it exists, else
  the official image. Podman runs with ``runc`` when installed (``crun`` cannot run in some
  sandboxes) and with ``containers.conf`` beside this file (rlimits a process without
  CAP_SYS_RESOURCE may set). Builds share the host network and, when the host has one, its CA
  bundle as a read-only build-time volume (never part of a layer), for hosts behind a TLS proxy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
OFFICIAL_BASE = "docker.io/library/python:3.11-slim-bookworm"
STANDIN = "localhost/workfleet-python:3.11-slim-bookworm"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Debian packages of the stand-in: the interpreter, venv (pip and ensurepip; distutils is what
# Debian's venv needs beside it) and the CA certificates the official image also carries.
STANDIN_PACKAGES = "python3.11,python3.11-venv,python3-distutils,ca-certificates"


def version() -> str:
    """workfleet's version, read from the source tree (the tag of both images)."""
    for line in (ROOT / "src" / "workfleet" / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    raise RuntimeError("no __version__ in src/workfleet/__init__.py")


@dataclass(frozen=True)
class Engine:
    """A container engine CLI with the flags this machine needs."""

    name: str  # "docker" or "podman"

    @property
    def argv(self) -> list[str]:
        if self.name == "podman" and shutil.which("runc"):
            return ["podman", "--runtime", "runc"]
        return [self.name]

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.name == "podman":
            env.setdefault("CONTAINERS_CONF", str(HERE / "containers.conf"))
        return env

    def run(
        self, *args: str, check: bool = True, timeout: float = 600, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``<engine> args...``; output captured as text."""
        return subprocess.run(
            [*self.argv, *args],
            env=self.env,
            check=check,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin.decode() if stdin is not None else None,
        )

    def image_exists(self, ref: str) -> bool:
        return self.run("image", "inspect", ref, check=False, timeout=60).returncode == 0

    def image_size(self, ref: str) -> int:
        """Size in bytes of the image's layers, base included."""
        return int(self.run("image", "inspect", "--format", "{{.Size}}", ref).stdout.strip())

    def layers(self, ref: str) -> list[tuple[int, str]]:
        """(size in bytes, created by), newest first, as ``history`` lists them."""
        out = self.run("history", "--no-trunc", "--format", "json", ref).stdout
        rows = json.loads(out)
        return [(int(r.get("size") or r.get("Size") or 0), _created_by(r)) for r in rows]


def _created_by(row: dict[str, object]) -> str:
    text = str(row.get("createdBy") or row.get("CreatedBy") or row.get("created_by") or "")
    return " ".join(text.removeprefix("/bin/sh -c ").removeprefix("#(nop) ").split())


def docker_answers() -> bool:
    """True when a Docker engine (not only the client) answers."""
    if not shutil.which("docker"):
        return False
    try:
        probe = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            check=False,
            timeout=15,
        )
    except subprocess.TimeoutExpired:
        return False
    return probe.returncode == 0


def choose_engine(name: str | None) -> Engine:
    """The engine asked for, else docker when its engine answers, else podman."""
    if name:
        return Engine(name)
    if docker_answers():
        return Engine("docker")
    if shutil.which("podman"):
        return Engine("podman")
    raise SystemExit("no container engine: neither a Docker engine answers nor podman is installed")


def base_image(engine: Engine) -> str:
    """The ``PYTHON_IMAGE`` build argument for ``engine`` (see the module docstring)."""
    if os.environ.get("PYTHON_IMAGE"):
        return os.environ["PYTHON_IMAGE"]
    if engine.name == "podman" and engine.image_exists(STANDIN):
        return STANDIN
    return OFFICIAL_BASE


def build_standin(engine: Engine, *, force: bool = False) -> None:
    """Create :data:`STANDIN` with debootstrap unless it exists (needs root and debootstrap)."""
    if engine.image_exists(STANDIN) and not force:
        print(f"stand-in base {STANDIN} exists; not rebuilt")
        return
    if not shutil.which("debootstrap"):
        raise SystemExit("building the stand-in base needs Debian's debootstrap")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="workfleet-standin-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        mirror = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={STANDIN_PACKAGES}",
                "bookworm",
                str(rootfs),
                mirror,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(
            ["chroot", str(rootfs), "/usr/bin/python3.11", "-m", "venv", "/usr/local"],
            check=True,
        )
        # as the official slim image: no apt lists or package cache (about 95 MB here)
        for junk in ("var/lib/apt/lists", "var/cache/apt"):
            for entry in (rootfs / junk).rglob("*"):
                if entry.is_file() and not entry.is_symlink():
                    entry.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            [
                *engine.argv,
                "import",
                "--quiet",
                "--change",
                "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--change",
                "ENV LANG=C.UTF-8",
                "--change",
                'CMD ["python3"]',
                "-",
                STANDIN,
            ],
            stdin=tar.stdout,
            env=engine.env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        if tar.wait() != 0:
            raise SystemExit("tar of the stand-in root filesystem failed")
    took = time.monotonic() - started
    print(
        f"stand-in base {STANDIN} built in {took:.0f} s, {engine.image_size(STANDIN) / 1e6:.0f} MB"
    )


def _build_flags(engine: Engine) -> list[str]:
    flags = ["--network", "host"]
    if engine.name == "podman":
        # buildah's layer cache keys a RUN step on its text, not on what its bind mounts hold:
        # `RUN --mount=type=bind,...` installs of changed sources would be reused from an older
        # build (a stale image that passes for new). BuildKit hashes mounted content; docker
        # builds keep their cache.
        flags.append("--no-cache")
    if engine.name == "podman" and HOST_CA_BUNDLE.is_file():
        # pip in RUN steps trusts what the host trusts (a TLS-intercepting proxy's CA);
        # a build-time volume is never committed to a layer
        flags += ["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
    return flags


def image_names(engine: Engine) -> tuple[str, str]:
    """The references of the workfleet image and the examples image."""
    prefix = "localhost/" if engine.name == "podman" else ""
    tag = version()
    return f"{prefix}workfleet:{tag}", f"{prefix}workfleet-examples:{tag}"


def build(engine: Engine) -> tuple[str, str]:
    """Build both images; return their references."""
    workfleet, examples = image_names(engine)
    base = base_image(engine)
    print(f"building with {engine.name} on {base}")
    steps = [
        (workfleet, ["--build-arg", f"PYTHON_IMAGE={base}", "-t", workfleet, str(ROOT)]),
        (
            examples,
            [
                "--build-arg",
                f"WORKFLEET_IMAGE={workfleet}",
                "-t",
                examples,
                "-f",
                str(ROOT / "plugins" / "workfleet-examples" / "Dockerfile"),
                str(ROOT / "plugins" / "workfleet-examples"),
            ],
        ),
    ]
    for ref, args in steps:
        started = time.monotonic()
        done = subprocess.run(
            [*engine.argv, "build", *_build_flags(engine), *args],
            env=engine.env,
            check=False,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            sys.stderr.write(done.stdout + done.stderr)
            raise SystemExit(f"building {ref} failed")
        print(f"built {ref} in {time.monotonic() - started:.1f} s")
    report(engine, base, workfleet, examples)
    return workfleet, examples


def report(engine: Engine, base: str, *refs: str) -> None:
    """Print each image's size and the layers it adds to the one below it."""
    below = base
    for ref in refs:
        size = engine.image_size(ref)
        added = engine.layers(ref)[: len(engine.layers(ref)) - len(engine.layers(below))]
        print(f"\n{ref}: {size / 1e6:.1f} MB ({(size - engine.image_size(below)) / 1e6:+.1f} MB)")
        for layer_size, created_by in reversed(added):
            if layer_size:
                print(f"  {layer_size / 1e6:8.1f} MB  {created_by[:90]}")
        below = ref


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.container.images")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build workfleet and workfleet-examples")
    b.add_argument("--engine", choices=["docker", "podman"])
    s = sub.add_parser("standin", help="build the debootstrap stand-in base once (podman)")
    s.add_argument("--force", action="store_true", help="rebuild even if the tag exists")
    args = parser.parse_args(argv)
    if args.command == "standin":
        build_standin(Engine("podman"), force=args.force)
    else:
        build(choose_engine(args.engine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
