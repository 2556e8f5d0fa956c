"""``cpool submit`` refuses a job file before parsing it into memory: over 1 MiB, or with
YAML anchors or aliases (the "billion laughs"); the message names the file."""

from __future__ import annotations

import time

from typer.testing import CliRunner

from computepool.bounds import JOB_FILE_MAX_BYTES
from computepool.cli.app import app

runner = CliRunner()
# Nothing listens here: a file that got past the checks would fail with "cannot reach".
NOWHERE = {"CPOOL_URL": "http://127.0.0.1:9", "CPOOL_TOKEN": "cpool_x"}

BOMB = (
    "a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']\n"
    + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},"
        f"*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]\n"
        for i in range(6)
    )
    + "command: echo\n"
)


def submit(path) -> tuple[int, str]:
    r = runner.invoke(app, ["submit", str(path)], env=NOWHERE, catch_exceptions=False)
    return r.exit_code, r.output


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path):
    f = tmp_path / "bomb.yaml"
    f.write_text(BOMB)  # 9^7 = 4.8 million strings once expanded (two more lines: 387 million)
    t0 = time.monotonic()
    code, out = submit(f)
    assert code != 0 and "bomb.yaml" in out and "aliases" in out, out
    assert time.monotonic() - t0 < 5


def test_a_single_anchor_or_alias_is_refused(tmp_path):
    f = tmp_path / "job.yaml"
    f.write_text("env: &e {A: '1'}\ncommand: echo\nname: *e\n")
    code, out = submit(f)
    assert code != 0 and "job.yaml" in out and "line 1" in out and "anchors" in out, out


def test_a_file_over_the_cap_is_refused(tmp_path):
    f = tmp_path / "huge.yaml"
    f.write_text("command: echo\nname: '" + "x" * JOB_FILE_MAX_BYTES + "'\n")
    code, out = submit(f)
    assert code != 0 and "huge.yaml" in out and "1 MiB" in out, out


def test_a_plain_file_gets_as_far_as_the_server(tmp_path):
    f = tmp_path / "ok.yaml"
    f.write_text("command: echo hi\nworkers: 2\nenv: {A: '1'}\n")
    code, out = submit(f)
    assert code != 0 and "cannot reach" in out, out
