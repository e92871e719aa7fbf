"""Keep the docs true: the configuration table matches the code, the two commands are in the README,
every relative link leads somewhere, and the docs speak of the product only."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from daemon.settings import Settings, describe

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CONFIGURATION = (ROOT / "docs" / "reference" / "configuration.md").read_text(encoding="utf-8")
CONTRIBUTING = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").rglob("*.md"))]
#: [text](target) and [text]: target, outside code spans
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)|^\[[^\]]+\]:\s*(\S+)", re.M)


def test_config_table_matches_settings():
    block = re.search(r"<!-- config-table:start -->\n(.*?)\n<!-- config-table:end -->", CONFIGURATION, re.S)
    assert block, "docs/reference/configuration.md lacks the configuration table markers"
    rows = {line.split("|")[1].strip().strip("`") for line in block.group(1).splitlines()[2:]}
    wanted = {var for var, _, _ in describe()}
    assert rows == wanted, ("configuration table out of date; regenerate it with `python -m daemon config "
                            f"--table`: missing {sorted(wanted - rows)}, stale {sorted(rows - wanted)}")
    for var, default, text in describe():
        shown = f"`{default}`" if default != "" else "(empty)"
        assert f"| `{var}` | {shown} | {text} |" in block.group(1), f"the row of {var} differs from the code"


def test_every_variable_is_named_in_the_configuration_page():
    for name in Settings.model_fields:
        assert f"VOICE_DAEMON_{name.upper()}" in CONFIGURATION


def test_the_two_commands_and_ci():
    assert "make run" in README and "make test" in README
    assert re.search(r"^make test\b", README, re.M), "the README's first test command must be `make test`"
    assert "system packages too" in README, "the README must say that `make test` installs everything"
    assert "stress-ng --cpu 2" in README and "yes > /dev/null" in README, "how to run the suite under load"
    assert "make test" in CONTRIBUTING and "stress-ng --cpu 2" in CONTRIBUTING
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_readme_stays_short():
    assert len(README.splitlines()) <= 200, "the README is the front door: details go into docs/"


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"<[^>]+>", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in strip_fences(markdown).splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*$", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def strip_fences(markdown: str) -> str:
    return re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", markdown, flags=re.M | re.S)


def strip_code(markdown: str) -> str:
    """The text without fenced blocks and code spans (a link shown as code is not a link)."""
    return re.sub(r"`[^`\n]*`", "", strip_fences(markdown))


def test_slugs_follow_github():
    assert slug("The `resynth` engine: the same words in another voice") == \
        "the-resynth-engine-the-same-words-in-another-voice"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}


def test_every_relative_link_leads_to_a_file_and_heading_that_exist():
    broken = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in LINK.finditer(strip_code(text)):
            target = m.group(1) or m.group(2)
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            dest = (doc.parent / unquote(path)).resolve() if path else doc
            where = f"{doc.relative_to(ROOT)}: {target}"
            if not dest.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text(encoding="utf-8")):
                broken.append(f"{where} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_docs_speak_of_the_product_only():
    history = re.compile(r"\bissue \d+|\b(this|last|that) (session|wave)\b|measured on 20\d\d|\b20\d\d-\d\d-\d\d\b",
                         re.I)
    found = [f"{doc.relative_to(ROOT)}:{n}: {line.strip()}" for doc in DOCS
             for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1) if history.search(line)]
    assert not found, "the docs speak of how the project was made:\n" + "\n".join(found)
