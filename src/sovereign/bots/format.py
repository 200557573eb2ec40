"""Phone-sized replies: short lines, no wide tables, Telegram HTML with every value escaped.

Every function takes a control-service result and returns the message text (``parse_mode``
HTML). Text that comes from the database (rule names, proposal summaries, reasons) is escaped,
so a crafted summary cannot inject markup. Messages are clipped to Telegram's 4,096 characters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from sovereign.app.control import (
    CapitalReport,
    ConstitutionReport,
    HaltResult,
    HistoryReport,
    ProposalsReport,
    ResumeResult,
    RollbackResult,
    RulesReport,
    StatusReport,
)
from sovereign.app.readiness import ReadinessReport
from sovereign.memory import ProposalHistory, RollbackHistory

MAX_CHARS = 4096
"""Telegram's limit on one message's text."""
WIDTH = 34
"""Characters of free text per line (a phone in portrait shows about this many)."""


def e(value: object) -> str:
    """``value`` as escaped HTML text."""
    return escape(str(value), quote=False)


def short(value: object, width: int = WIDTH) -> str:
    """``value`` cut to ``width`` characters (with an ellipsis) and escaped."""
    text = " ".join(str(value).split())
    return e(text if len(text) <= width else text[: width - 1] + "…")


def clip(text: str, limit: int = MAX_CHARS) -> str:
    """Keep a message under Telegram's limit, cutting at a line break."""
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit - 20)
    return text[: cut if cut > 0 else limit - 20] + "\n… (cut)"


def money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def pct(value: float | None, *, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.2%}" if sign else f"{value:.2%}"


def _lines(*parts: str | None) -> str:
    return clip("\n".join(p for p in parts if p is not None))


# --- commands ---------------------------------------------------------------------------------


def status_text(s: StatusReport, *, refused: int = 0) -> str:
    state = {"NORMAL": "🟢", "REDUCING": "🟡", "HALTED": "🔴"}.get(s.supervisor_state, "")
    out = [f"<b>{state} {e(s.supervisor_state)}</b>"]
    if s.supervisor_reason:
        out.append(short(s.supervisor_reason))
    if s.halt_file:
        out.append("⚠️ halt file present")
    a = s.account
    if a is None:
        out.append("Account: no run recorded")
    else:
        out += [
            f"Equity {money(a.equity)}",
            f"Day P&amp;L {a.day_pnl:+,.0f}",
            f"Drawdown {pct(a.drawdown)}",
            f"Exposure {pct(a.gross_exposure)}",
            f"as of {a.as_of:%Y-%m-%d %H:%M}",
        ]
        if a.positions is None:
            out.append("Positions: not recorded")
        else:
            out.append(f"Positions: {len(a.positions)}")
            out += [f" {short(p.symbol, 8)} {p.quantity:+,.0f}" for p in a.positions[:10]]
    out.append(f"Rules v{s.ruleset_version or '-'}: {s.active_rules} active")
    if s.last_proposal is not None:
        lp = s.last_proposal
        out.append(f"Last proposal {lp.at:%m-%d %H:%M}: {e(lp.outcome)}")
        out.append(f" {short(lp.summary)}")
    if s.autodeploy_frozen:
        out.append(f"❄️ auto-deploy frozen: {short(s.autodeploy_frozen, 20)}")
    pin = "pinned" if s.constitution_pinned else "NOT pinned"
    out.append(f"Constitution {pin}")
    out.append(f"Broker: {_health(s.broker.ok)} {short(s.broker.detail, 26)}")
    out.append(f"Data: {_health(s.data.ok)} {short(s.data.detail, 28)}")
    out.append(f"Refused updates: {refused}")
    return _lines(*out)


def _health(ok: bool | None) -> str:
    return "?" if ok is None else ("ok" if ok else "BAD")


def capital_text(c: CapitalReport) -> str:
    if not c.pools:
        return "No capital pools recorded yet."
    out = [f"<b>Capital</b> (equity {money(c.final_equity)})"]
    for p in c.pools:
        killed = " ☠️ killed" if p.killed else ""
        out.append(f"<b>{short(p.strategy, 24)}</b>{killed}")
        out.append(f" pool {money(p.pool_equity)} of {money(p.capital)}")
        out.append(f" return {pct(p.pool_return, sign=True)}, {p.trades} trades")
    return _lines(*out)


def condition_text(c: Mapping[str, Any]) -> str:
    """A condition's JSON as a compact phrase: ``regime_is volatile``, ``(a and b)``."""
    kind = str(c.get("type", "?"))
    if kind in ("and", "or"):
        parts = c.get("all" if kind == "and" else "any")
        return "(" + f" {kind} ".join(condition_text(p) for p in parts or ()) + ")"
    if kind == "not":
        return "not " + condition_text(c.get("cond") or {})
    args = " ".join(str(v) for k, v in c.items() if k != "type")
    return f"{kind} {args}".strip()


def rules_text(r: RulesReport) -> str:
    out = [f"<b>Rules v{r.version or '-'}</b> ({len(r.rules)})"]
    if not r.rules:
        out.append("No active rules.")
    for rule in r.rules:
        out.append(f"<b>{short(rule.name, 28)}</b> [{e(rule.strategy or 'all')}]")
        out.append(f" if {short(condition_text(rule.when), 30)}")
        out.append(f" then {short(condition_text(rule.then), 28)}")
    for strategy, params in r.params.items():
        tuned = ", ".join(f"{k}={v:g}" for k, v in params.items())
        out.append(f"{short(strategy, 16)}: {short(tuned, 30)}")
    recent = r.versions[-5:]
    if recent:
        out.append("Versions:")
        out += [
            f" v{v.version}{' *' if v.active else ''} {v.rules} rules {v.created_at:%m-%d}"
            for v in reversed(recent)
        ]
    return _lines(*out)


def constitution_text(c: ConstitutionReport) -> str:
    out = [f"<b>Constitution</b> ({e(c.pin)})", f"sha {e(c.sha256[:12])}"]
    for key, value in c.limits.items():
        if isinstance(value, list):
            out.append(f"{e(key)}:")
            out += [f" · {short(v, 30)}" for v in value]
        else:
            out.append(f"{e(key)}: {short(value, 16)}")
    return _lines(*out)


def history_text(h: HistoryReport) -> str:
    out = ["<b>History</b> (newest first)"]
    if not h.entries:
        out.append("Nothing yet.")
    for entry in h.entries:
        if isinstance(entry, RollbackHistory):
            r = entry.rollback
            out.append(f"{entry.at:%m-%d %H:%M} ↩️ to v{r.to_version} by {short(r.by, 16)}")
        elif isinstance(entry, ProposalHistory):
            outcome = _proposal_outcome(entry)
            out.append(f"{entry.at:%m-%d %H:%M} {outcome}")
            out.append(f" {short(entry.summary)}")
    if h.frozen:
        out.append(f"❄️ auto-deploy frozen: {short(h.frozen, 20)}")
    return _lines(*out)


def _proposal_outcome(entry: ProposalHistory) -> str:
    if entry.deployment is not None:
        return f"✅ deployed v{entry.deployment.to_version}"
    if entry.verdict is not None and not entry.verdict.accepted:
        codes = ", ".join(entry.verdict.codes[:2])
        return f"❌ {e(codes) or 'rejected'}"
    return "… pending"


def proposals_text(p: ProposalsReport) -> str:
    out = ["<b>Proposals</b> (newest first)"]
    if not p.items:
        out.append("None yet.")
    for item in p.items:
        mark = {"deployed": "✅", "rejected": "❌"}.get(item.outcome, "…")
        where = f" v{item.to_version}" if item.to_version is not None else ""
        out.append(f"{mark} {item.at:%m-%d %H:%M} {e(item.outcome)}{where}")
        out.append(f" {short(item.summary)}")
        if item.codes:
            out.append(f" {short(', '.join(item.codes))}")
    return _lines(*out)


def readiness_text(r: ReadinessReport) -> str:
    head = "✅ ready for live" if r.ready else "⛔ not ready for live"
    out = [f"<b>{head}</b>"]
    for item in r.items:
        out.append(f"{'✅' if item.ok else '❌'} {e(item.name)}")
        out.append(f" {short(item.detail)}")
    return _lines(*out)


def halt_text(h: HaltResult) -> str:
    if not h.changed:
        return f"Already halted.\n{short(h.reason)}"
    return f"🔴 <b>HALTED</b>\n{short(h.reason)}"


def resume_text(r: ResumeResult) -> str:
    mark = "🟢" if r.state == "NORMAL" else "⚠️"
    return f"{mark} <b>{e(r.state)}</b>\n{short(r.message, 60)}"


def rollback_text(r: RollbackResult) -> str:
    rec = r.record
    return f"↩️ Rolled back to v{rec.to_version}\n{e(rec.ruleset_id)}\nby {short(rec.by, 28)}"


def confirm_text(action: str, arg: int | None, seconds: int) -> str:
    what = {
        "halt": "Halt trading now?",
        "resume": "Resume trading?",
        "rollback": f"Roll back to rule set v{arg}?",
    }.get(action, f"{e(action)}?")
    return f"<b>{what}</b>\nConfirm within {seconds} s."


def help_text(commands: Sequence[tuple[str, str]]) -> str:
    return _lines("<b>Sovereign</b>", *(f"/{e(c)} {e(d)}" for c, d in commands))


# --- notifications ----------------------------------------------------------------------------


def deploy_note(summary: str, *, proposal_id: str | None, version: int | None = None) -> str:
    where = f" as v{version}" if version is not None else ""
    return _lines(f"✅ <b>Deployed</b>{where}", short(summary, 60), _id(proposal_id))


def reject_note(
    summary: str, *, proposal_id: str | None, stage: str | None, codes: Iterable[str]
) -> str:
    at = f" at {e(stage)}" if stage else ""
    return _lines(
        f"❌ <b>Rejected</b>{at}", short(summary, 60), short(", ".join(codes), 60), _id(proposal_id)
    )


def _id(proposal_id: str | None) -> str | None:
    return None if not proposal_id else f"<code>{e(proposal_id)}</code>"


__all__ = [
    "MAX_CHARS",
    "WIDTH",
    "capital_text",
    "clip",
    "condition_text",
    "confirm_text",
    "constitution_text",
    "deploy_note",
    "e",
    "halt_text",
    "help_text",
    "history_text",
    "money",
    "pct",
    "proposals_text",
    "readiness_text",
    "reject_note",
    "resume_text",
    "rollback_text",
    "rules_text",
    "short",
    "status_text",
]
