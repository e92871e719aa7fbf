"""Keep the README true: the configuration table matches the code, the two commands are there."""

from __future__ import annotations

import re
from pathlib import Path

from daemon.settings import Settings, describe

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_config_table_matches_settings():
    block = re.search(r"<!-- config-table:start -->\n(.*?)\n<!-- config-table:end -->", README, re.S)
    assert block, "README lacks the configuration table markers"
    rows = {line.split("|")[1].strip().strip("`") for line in block.group(1).splitlines()[2:]}
    wanted = {var for var, _, _ in describe()}
    assert rows == wanted, ("README table out of date; regenerate it with `voice-daemon config --table`: "
                            f"missing {sorted(wanted - rows)}, stale {sorted(rows - wanted)}")
    for var, default, _ in describe():
        assert f"| `{var}` | `{default}` |" in block.group(1) or default == "", f"default of {var} differs"


def test_every_variable_is_named_in_the_readme():
    for name in Settings.model_fields:
        assert f"VOICE_DAEMON_{name.upper()}" in README


def test_the_two_commands_and_ci():
    assert "make run" in README and "make test" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
