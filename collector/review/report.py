"""``collector report DIR --html out.html``: one self-contained HTML file a lab manager can mail.

Dashboard plots (matplotlib, drawn headless with the Agg backend, inlined as SVG), then a table of
every episode with its thumbnail (inlined JPEG), curation and quality flags (with what the integrity
ledger says is missing, in words), damaged files listed with their reason.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime
from pathlib import Path
from typing import Any

from collector.review.dashboard import GroupStats, build_dashboard
from collector.review.quality import FLAGS, flag_sentences

_CSS = """
body{font:14px/1.4 -apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:24px;color:#1d232a;background:#f6f7f9}
h1{font-size:22px;margin:0 0 4px} h2{font-size:16px;margin:28px 0 8px}
.sub{color:#5b6570;margin-bottom:16px}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:12px 16px;min-width:130px}
.card b{display:block;font-size:22px} .card span{color:#5b6570;font-size:12px}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:12px}
.plot{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:8px}
.plot svg{width:100%;height:auto}
table{border-collapse:collapse;background:#fff;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e6e9ed;padding:6px 8px;text-align:left;vertical-align:middle}
th{background:#eef1f4;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums}
img.thumb{width:128px;border-radius:4px;display:block}
.flag{display:inline-block;background:#fff2d6;color:#7a4b00;border-radius:10px;padding:1px 8px;margin:1px;font-size:12px}
.damaged{background:#fde3e3;color:#8a1c1c}
.problem{color:#8a1c1c;font-size:12px;margin-top:2px}
.success{color:#1c7a3a;font-weight:600} .failure{color:#b3261e;font-weight:600} .unknown{color:#5b6570}
"""

_COLORS = {"success": "#2e9e55", "failure": "#d0453a", "unknown": "#a8b0b9"}


def _svg(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _outcome_bars(groups: dict[str, GroupStats], title: str, hours: bool, scale: float = 1.0) -> str:
    import matplotlib.pyplot as plt

    names = list(groups)
    fig, ax = plt.subplots(figsize=(6, max(1.8, 0.35 * len(names) + 1)))
    left = [0.0] * len(names)
    for outcome in ("success", "failure", "unknown"):
        if hours:
            values = [scale * groups[n].seconds / 3600 * getattr(groups[n], outcome) /
                      max(1, groups[n].episodes - groups[n].damaged) for n in names]
        else:
            values = [getattr(groups[n], outcome) for n in names]
        ax.barh(names, values, left=left, color=_COLORS[outcome], label=outcome)
        left = [a + b for a, b in zip(left, values)]
    ax.set_title(title, fontsize=11, loc="left", pad=22)
    ax.invert_yaxis()
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3)
    text = _svg(fig)
    plt.close(fig)
    return text


def _simple_bars(labels: list[str], values: list[float], title: str, color: str) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 2.6))
    ax.bar(labels, values, color=color)
    ax.set_title(title, fontsize=11, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    text = _svg(fig)
    plt.close(fig)
    return text


def _duration_histogram(durations: list[float]) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 2.6))
    ax.hist(durations, bins=min(40, max(5, len(durations) // 3)), color="#3d7bd9")
    ax.set_title("Episode duration (s)", fontsize=11, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    text = _svg(fig)
    plt.close(fig)
    return text


def _image_uri(path: Path | None) -> str:
    if path is None:
        return ""
    return "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode()


def write_html_report(catalog: Any, out: Path) -> Path:
    """Write the report of a scanned :class:`~collector.review.catalog.EpisodeCatalog` to
    ``out`` and return it."""
    import matplotlib

    matplotlib.use("Agg")
    # Text as text (not glyph paths): smaller, selectable, and no id clashes between inline SVGs.
    matplotlib.rcParams["svg.fonttype"] = "none"
    summaries = catalog.summaries
    board = build_dashboard(summaries)
    t = board.total
    rate = "–" if t.success_rate is None else f"{t.success_rate:.0%}"
    cards = [(f"{t.episodes}", "episodes"), (f"{t.hours:.2f}", "hours recorded"),
             (f"{t.kept_seconds / 3600:.2f}", "hours after trims"), (rate, t.success_caption),
             (f"{t.flagged_share:.0%}", "flagged"), (f"{t.damaged}", "damaged files"),
             (f"{t.bytes / 1e9:.2f} GB", "on disk")]
    plots = []
    # Small datasets read better in minutes than in thousandths of an hour.
    scale, unit = (1.0, "hours") if t.hours >= 1 else (60.0, "minutes")
    if board.by_task:
        plots.append(_outcome_bars(board.by_task, f"Recorded {unit} per task, by outcome", hours=True,
                                   scale=scale))
        plots.append(_outcome_bars(board.by_operator, "Episodes per operator, by outcome", hours=False))
        days = list(board.by_day)
        plots.append(_simple_bars(days, [scale * board.by_day[d].hours for d in days],
                                  f"Recorded {unit} per day", "#3d7bd9"))
        plots.append(_duration_histogram([s.duration_s for s in summaries if s.ok]))
    if board.flag_counts:
        plots.append(_simple_bars(list(board.flag_counts), list(board.flag_counts.values()),
                                  "Episodes per quality flag", "#e0a030"))
    rows = []
    for s in summaries:
        e = html.escape
        if not s.ok:
            rows.append(f"<tr><td></td><td colspan=6><span class='flag damaged'>damaged</span> "
                        f"{e(s.error)}</td><td class=num>{s.file_bytes / 1e6:.1f}</td><td>{e(s.path)}</td></tr>")
            continue
        thumb = _image_uri(catalog.thumbnail_path(s))
        flags = "".join(f"<span class='flag{' damaged' if f == 'failed' else ''}' "
                        f"title='{e(FLAGS.get(f, f))}'>{e(f)}</span>" for f in s.flags)
        # What the integrity ledger says is missing, in its own words, under the flags.
        flags += "".join(f"<div class=problem>{e(sentence)}</div>"
                         for flag, sentence in flag_sentences(s.flags, s.integrity)
                         if flag in ("failed", "incomplete") and sentence != FLAGS[flag])
        trim = f"<br><small>trim {s.trim[0]:.1f}–{s.trim[1]:.1f} s</small>" if s.trim else ""
        rows.append(
            f"<tr><td>{f'<img class=thumb src={thumb!r}>' if thumb else ''}</td>"
            f"<td>{e(s.start_time[:19].replace('T', ' '))}</td><td>{e(s.task)}</td><td>{e(s.operator)}</td>"
            f"<td class=num>{s.duration_s:.1f}{trim}</td><td class={e(s.outcome)}>{e(s.outcome)}</td>"
            f"<td>{e(', '.join(s.tags))}<br>{flags}</td><td class=num>{s.file_bytes / 1e6:.1f}</td>"
            f"<td><small>{e(s.path)}</small>{'<br><i>' + e(s.notes) + '</i>' if s.notes else ''}</td></tr>")
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Episodes in {html.escape(str(catalog.root))}</title><style>{_CSS}</style></head><body>
<h1>Episodes in {html.escape(str(catalog.root))}</h1>
<div class=sub>collector report, {datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}</div>
<div class=cards>{''.join(f'<div class=card><b>{v}</b><span>{k}</span></div>' for v, k in cards)}</div>
<h2>Dashboard</h2><div class=plots>{''.join(f'<div class=plot>{p}</div>' for p in plots)}</div>
<h2>Episodes</h2>
<table><tr><th></th><th>started</th><th>task</th><th>operator</th><th>duration s</th><th>outcome</th>
<th>tags / flags</th><th>MB</th><th>file</th></tr>
{''.join(rows)}</table></body></html>"""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
