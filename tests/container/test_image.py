"""The images themselves: version, plugins, layers (no dead ones), a plugin added by pip only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.container.conftest import FIGURES, Images, chart_security_flags
from tests.container.images import STANDIN, Engine, base_image, version

# Sums the sizes of the root filesystem's files, each inode once (hard links are one file).
FS_BYTES = """
import os
seen, total = set(), 0
for top in os.listdir("/"):
    if top in ("proc", "sys", "dev", "tmp", "run"):
        continue
    for d, _, files in os.walk("/" + top):
        for f in files:
            st = os.lstat(os.path.join(d, f))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
print(total)
"""


def run(engine: Engine, image: str, *args: str) -> subprocess.CompletedProcess[str]:
    return engine.run("run", "--rm", *chart_security_flags(), image, *args, check=False)


def test_version_is_the_source_trees(engine: Engine, images: Images) -> None:
    for image in (images.workfleet, images.examples):
        done = run(engine, image, "--version")
        assert (done.returncode, done.stdout.strip()) == (0, f"workfleet {version()}")


def _patterns(listing: str) -> list[str]:
    lines = listing.strip().splitlines()
    if not lines or lines[0].split()[:1] != ["PATTERN"]:
        return []
    return sorted(line.split()[0] for line in lines[1:] if line.strip())


def test_examples_image_lists_the_example_plugins(engine: Engine, images: Images) -> None:
    """The image executes what the example package declares (as the host's install lists it)."""
    host = subprocess.run(
        [str(Path(sys.executable).with_name("workfleet")), "plugins"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    expected = _patterns(host.stdout)
    assert "media.video.v1" in expected
    in_image = run(engine, images.examples, "plugins")
    assert in_image.returncode == 0, in_image.stderr
    assert _patterns(in_image.stdout) == expected
    bare = run(engine, images.workfleet, "plugins")
    assert (bare.returncode, _patterns(bare.stdout)) == (0, [])


def _added_layers(engine: Engine, image: str, below: str) -> list[tuple[int, str]]:
    layers = engine.layers(image)
    return layers[: len(layers) - len(engine.layers(below))]


def _fs_bytes(engine: Engine, image: str) -> int:
    done = engine.run("run", "--rm", "--entrypoint", "python3", image, "-c", FS_BYTES)
    return int(done.stdout.strip())


def test_no_dead_layers(engine: Engine, images: Images) -> None:
    """What the layers above the base weigh is what they leave in the filesystem.

    A layer whose files a later one deletes (``COPY`` wheels, then ``rm``) still ships: the
    layers would then outweigh the filesystem's growth by the deleted files (11.9 MB of wheels
    once). The remaining slack is tar's per-file headers, about 0.5 KB per file.
    """
    base = base_image(engine)
    below = base
    for image in (images.workfleet, images.examples):
        layers = _added_layers(engine, image, below)
        added = sum(size for size, _ in layers)
        growth = _fs_bytes(engine, image) - _fs_bytes(engine, below)
        assert 0 <= added - growth <= 0.05 * growth + 1_000_000, (image, added, growth, layers)
        FIGURES[f"size {image}"] = (
            f"{engine.image_size(image) / 1e6:.1f} MB (+{added / 1e6:.1f} MB)"
        )
        below = image
    kind = "debootstrap stand-in" if base == STANDIN else "base"
    FIGURES[f"size {base} ({kind})"] = f"{engine.image_size(base) / 1e6:.1f} MB"


def test_plugin_image_is_the_base_plus_one_pip_install(engine: Engine, images: Images) -> None:
    layers = _added_layers(engine, images.examples, images.workfleet)
    with_files = [created_by for size, created_by in layers if size]
    assert len(with_files) == 1 and "pip install" in with_files[0], layers
    assert not any(c.startswith(("COPY", "ADD")) for _, c in layers), layers
    # the worker runs as the base image's user again
    user = engine.run("image", "inspect", "--format", "{{.Config.User}}", images.examples)
    assert user.stdout.strip() == "10001:10001"
