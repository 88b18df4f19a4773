"""README.md's headline results quote the READMEs and reports they link: every number in a headline
must appear in one of the markdown files that headline links to (whose own figures are checked
against the records by test_readme_results.py, test_readings.py and test_compare_devices.py)."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+\.md)\)")
NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _headlines():
    section = re.split(r"^## ", (ROOT / "README.md").read_text(), flags=re.M)
    text = next(s for s in section if s.startswith("Headline results"))
    return [" ".join(item.split()) for item in re.split(r"^- ", text, flags=re.M)[1:]]


def _unquoted(headline, sources):
    words = LINK.sub("", headline)
    return [n for n in NUMBER.findall(words)
            if not any(re.search(rf"(?<![\d.]){re.escape(n)}(?![\d])", s) for s in sources)]


HEADLINES = _headlines()


def test_the_readme_has_three_to_five_headlines_each_with_its_source():
    assert 3 <= len(HEADLINES) <= 6, HEADLINES
    assert all(LINK.search(h) for h in HEADLINES)


@pytest.mark.parametrize("headline", HEADLINES, ids=[h[:40] for h in HEADLINES])
def test_every_number_of_a_headline_is_in_what_it_links(headline):
    sources = [" ".join((ROOT / target).read_text().split()) for target in LINK.findall(headline)]
    assert not _unquoted(headline, sources), f"{headline!r}: not in its sources: {_unquoted(headline, sources)}"


def test_a_number_not_in_the_source_is_caught():
    assert _unquoted("decodes 112.8 tokens/s, not 113 ([r](x.md))", ["Q4_0 decodes 112.8 tokens/s"]) == ["113"]
