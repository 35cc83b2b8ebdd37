"""Render worker processes: they render the claimed contacts, stop cleanly, and never outlive a run."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from harkat_mail import load_campaign, prepare, send
from harkat_mail.cli import main
from harkat_mail.errors import RenderError
from harkat_mail.models import SmtpConfig
from harkat_mail.run.prepare import samples

from .test_crash import _project, _start, _states
from .test_e2e import _expected

WORKER_RUN = 3200  # above the 3,000 from which a send renders in worker processes


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (the render workers and multiprocessing's helpers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(handler, count: int, proc) -> None:
    """Wait until the relay holds ``count`` messages; fail if the sender died or stalled."""
    deadline = time.monotonic() + 90
    while len(handler.messages) < count:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the sender made no progress"
        time.sleep(0.01)


@pytest.mark.slow
def test_ctrl_c_while_workers_render_is_one_line_and_resumes(
    tmp_path: Path, project: Path, smtp_server
) -> None:
    """SIGINT with render workers running: exit 130, one line, no traceback; resume sends the rest once."""
    server, handler = smtp_server()
    campaign = _project(tmp_path, project, server.port, rate=400, count=WORKER_RUN)
    proc = _start(campaign)
    _wait_for(handler, 200, proc)
    assert _children(proc.pid), "a run of this size renders in worker processes"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "interrupted" in err
    resume = _start(campaign)
    resume.communicate(timeout=180)
    assert resume.returncode == 0
    assert set(_states(campaign).values()) == {"sent"}
    assert all(handler.copies(f"member{i}@example.org") == 1 for i in range(WORKER_RUN))


@pytest.mark.slow
def test_workers_exit_when_the_sender_is_killed(tmp_path: Path, project: Path, smtp_server) -> None:
    """SIGKILL of the sending process: its render worker and helpers are gone within seconds."""
    server, handler = smtp_server()
    campaign = _project(tmp_path, project, server.port, rate=200, count=WORKER_RUN)
    proc = _start(campaign)
    _wait_for(handler, 50, proc)
    children = _children(proc.pid)
    assert children
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if _alive(pid)]


def test_workers_render_exactly_the_planned_members_after_the_list_changes(
    project: Path, smtp_server
) -> None:
    """Suppressions added after prepare change nobody's message: each planned member gets one."""
    server, handler = smtp_server()
    campaign = load_campaign(project)
    prepared = prepare(campaign)
    todo = prepared.contacts.contacts
    # Staff edit the list and suppression file as the run starts: the workers must not care.
    (project.parent.parent / "suppression.txt").write_text(
        "".join(f"{c.email}\n" for c in todo[::3]), encoding="utf-8"
    )
    members = project.parent.parent / "lists" / "members.csv"
    members.write_text(members.read_text(encoding="utf-8")[:200], encoding="utf-8")
    smtp = SmtpConfig(local=False, host="127.0.0.1", port=server.port, tls="none")
    summary = send(prepared, smtp, pool_from=10)
    assert summary.delivered == len(todo)
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == sorted(c.email for c in todo)


def test_template_changed_before_workers_start_stops_the_run(project: Path, smtp_server) -> None:
    """A template edited between prepare and the workers starting: RenderError, nothing sent."""
    server, handler = smtp_server()
    campaign = load_campaign(project)
    prepared = prepare(campaign)
    en = campaign.template / "en.html"
    en.write_text(en.read_text(encoding="utf-8").replace("Dear", "Hello"), encoding="utf-8")
    smtp = SmtpConfig(local=False, host="127.0.0.1", port=server.port, tls="none")
    with pytest.raises(RenderError, match="template changed"):
        send(prepared, smtp, pool_from=10)
    assert handler.messages == []


def test_a_template_that_raises_in_a_worker_fails_only_that_member(
    project: Path, smtp_server, monkeypatch
) -> None:
    """A render error inside a worker: that member is failed with its row, the rest are sent."""
    from harkat_mail.run import renderpool

    monkeypatch.setattr(renderpool, "POOL_FROM", 10)
    server, _ = smtp_server()
    checked = {c.key for c in samples(prepare(load_campaign(project)))}
    expected = _expected(project)
    victim = next(e for e in sorted(expected) if e not in checked)
    en = project.parent.parent / "templates" / "harkat-appeal" / "en.html"
    fr = en.with_name("fr.html")
    for path in (en, fr):
        text = path.read_text(encoding="utf-8")
        trap = f'{{% if email|lower == "{victim}" %}}{{{{ 1 // (local|int * 0) }}}}{{% endif %}}'
        path.write_text(text.replace("{% block body %}", "{% block body %}" + trap, 1), encoding="utf-8")
    result = CliRunner().invoke(
        main, ["send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes"]
    )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    states = {e.lower(): s for e, s in _states(project).items()}
    assert states[victim] == "failed"
    assert sorted(e for e, s in states.items() if s == "sent") == sorted(set(expected) - {victim})
