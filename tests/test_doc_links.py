"""Every relative link in the user's markdown (README.md, docs/, the committed examples' READMEs,
tools/gpu/README.md) points at a file or folder that exists, so a moved document cannot leave a
dead link behind."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)


def _documents():
    found = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "results").rglob("README.md"),
             *(ROOT / "tools").rglob("README.md"), *(ROOT / "config").glob("*.md")]
    return sorted(p for p in found if p.is_file())


def _relative_links(text):
    for target in LINK.findall(CODE.sub("", text)):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL or an anchor in the same file
        yield target.split("#", 1)[0]


@pytest.mark.parametrize("doc", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc):
    broken = [t for t in _relative_links(doc.read_text()) if not (doc.parent / t).exists()]
    assert not broken, f"{doc.relative_to(ROOT)}: links to missing files: {broken}"


def test_a_broken_link_is_found():
    assert list(_relative_links("see [a](missing.md#x), [b](https://x.org), [c](#top), `[d](e.md)`")) == \
        ["missing.md"]
