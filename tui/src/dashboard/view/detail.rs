//! One employer: status and options, recent runs (table, bar chart of durations, sparkline of
//! changes), the retry queue with reasons (selectable for `r`), and live rows per table.

use arbosync_shared::{EmployerView, Progress, RunOutcomeKind, RunSummary};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Bar, BarChart, BarGroup, Block, Cell, HighlightSpacing, Paragraph, Row, Sparkline, Table,
    TableState,
};

use super::{Theme, badge, window};
use crate::dashboard::format;
use crate::dashboard::model::Model;

/// From this width on, rows per table get a box of their own; narrower, they are one line of
/// the summary and the retry queue takes the full width.
const WIDE: u16 = 120;

pub fn draw(model: &Model, e: &EmployerView, theme: &Theme, frame: &mut Frame, area: Rect) {
    let wide = area.width >= WIDE;
    let [summary, middle, bottom] = Layout::vertical([
        Constraint::Length(if wide { 6 } else { 7 }),
        Constraint::Fill(3),
        Constraint::Fill(2),
    ])
    .areas(area);
    draw_summary(model, e, theme, frame, summary, !wide);

    let [runs, charts] =
        Layout::horizontal([Constraint::Fill(3), Constraint::Fill(2)]).areas(middle);
    draw_runs(model, e, theme, frame, runs);
    let [durations, changes] =
        Layout::vertical([Constraint::Fill(1), Constraint::Fill(1)]).areas(charts);
    draw_durations(e, theme, frame, durations);
    draw_changes(e, theme, frame, changes);

    if wide {
        let [retry, entities] =
            Layout::horizontal([Constraint::Fill(3), Constraint::Fill(2)]).areas(bottom);
        draw_retry_queue(model, e, theme, frame, retry);
        draw_entities(e, theme, frame, entities);
    } else {
        draw_retry_queue(model, e, theme, frame, bottom);
    }
}

fn yes_no(flag: bool) -> &'static str {
    if flag { "✓" } else { "✗" }
}

fn draw_summary(
    model: &Model,
    e: &EmployerView,
    theme: &Theme,
    frame: &mut Frame,
    area: Rect,
    with_counts: bool,
) {
    let now = model.now;
    let label = |text: &'static str| Span::styled(text, theme.dim());
    let mut status = vec![
        label(" Status  "),
        Span::styled(badge(e), theme.health(e.health)),
        label(" · connection "),
        Span::raw(e.connection.as_str()),
    ];
    if !e.active {
        status.push(Span::styled(" · inactive", theme.dim()));
    }
    if e.paused {
        status.push(Span::styled(" · paused", theme.warn()));
    }
    if e.needs_reconnect {
        status.push(Span::styled(" · needs reconnect in Loket", theme.error()));
    }
    if let Some(at) = e.next_run_at
        && e.active
        && !e.paused
    {
        status.push(label(" · next run "));
        status.push(Span::raw(format::until(now, at)));
    }

    let o = &e.options;
    let options = Line::from(vec![
        label(" Options "),
        Span::raw(format!(
            "all employments {} · absences {} · salary {} · BSN {} · history {} months",
            yes_no(o.all_employments),
            yes_no(o.absences),
            yes_no(o.salary),
            yes_no(o.bsn),
            o.history_months
        )),
    ]);

    let activity = match &e.running {
        Some(running) => {
            let kind = if running.full {
                "full reconcile"
            } else {
                "incremental run"
            };
            let phase = match running.progress {
                Progress::Queued => "queued".to_owned(),
                Progress::Started => "started".to_owned(),
                Progress::Fetching => "fetching from Loket".to_owned(),
                Progress::Applying { done, total } => format!(
                    "applying {done}/{total} ({}%)",
                    format::percent(done, total)
                ),
            };
            Line::from(vec![
                label(" Running "),
                Span::styled(
                    format!(
                        "{kind} · {phase} · for {}",
                        format::span((now - running.started_at).num_seconds())
                    ),
                    theme.health(arbosync_shared::Health::Running),
                ),
            ])
        }
        None => {
            let full = e
                .last_full_reconcile
                .map(|at| format::ago(now, at))
                .unwrap_or_else(|| "never".to_owned());
            Line::from(vec![label(" Last full reconcile "), Span::raw(full)])
        }
    };

    let error = match (&e.last_error, e.last_error_at) {
        (Some(message), at) => {
            let when = at.map(|at| format::ago(now, at)).unwrap_or_default();
            Line::from(vec![
                label(" Last error "),
                Span::styled(when, theme.dim()),
                Span::raw(" "),
                Span::styled(message.as_str(), theme.error()),
            ])
        }
        (None, _) => Line::from(vec![label(" Last error "), Span::raw("none")]),
    };

    let block = Block::bordered().title(Line::from(vec![
        Span::raw(" "),
        Span::styled(e.name.as_str(), theme.title()),
        Span::raw(" "),
    ]));
    let mut lines = vec![Line::from(status), options, activity, error];
    if with_counts {
        let counts = if e.entity_counts.is_empty() {
            "none yet".to_owned()
        } else {
            e.entity_counts
                .iter()
                .map(|(table, count)| format!("{table} {count}"))
                .collect::<Vec<_>>()
                .join(" · ")
        };
        lines.push(Line::from(vec![label(" Rows    "), Span::raw(counts)]));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn outcome(theme: &Theme, run: &RunSummary) -> Cell<'static> {
    let (text, style) = match run.outcome {
        RunOutcomeKind::Ok => ("✓ ok", theme.ok()),
        RunOutcomeKind::Partial => ("◐ partial", theme.warn()),
        RunOutcomeKind::Failed => ("✗ failed", theme.error()),
        RunOutcomeKind::Cancelled => ("- cancelled", theme.dim()),
    };
    Cell::from(text).style(style)
}

fn draw_runs(model: &Model, e: &EmployerView, theme: &Theme, frame: &mut Frame, area: Rect) {
    let wide = area.width >= 70;
    let fit = usize::from(area.height.saturating_sub(3));
    let rows: Vec<Row> = e
        .recent_runs
        .iter()
        .take(fit)
        .map(|run| {
            let mut cells = vec![
                Cell::from(format::ago(model.now, run.started_at)),
                Cell::from(if run.full { "full" } else { "inc" }),
                outcome(theme, run),
                Cell::from(format::duration_ms(run.duration_ms)),
                Cell::from(format::changes(run.inserted, run.updated, run.deleted)),
            ];
            if wide {
                cells.push(Cell::from(run.failed.to_string()));
                cells.push(Cell::from(run.requests.to_string()));
                cells.push(Cell::from(run.error.clone().unwrap_or_default()).style(theme.error()));
            }
            Row::new(cells)
        })
        .collect();
    let (header, widths) = if wide {
        (
            vec![
                "Started", "Kind", "Result", "Took", "Changes", "Failed", "Req", "Error",
            ],
            vec![
                Constraint::Length(8),
                Constraint::Length(4),
                Constraint::Length(11),
                Constraint::Length(7),
                Constraint::Length(16),
                Constraint::Length(6),
                Constraint::Length(5),
                Constraint::Fill(1),
            ],
        )
    } else {
        (
            vec!["Started", "Kind", "Result", "Took", "Changes"],
            vec![
                Constraint::Length(8),
                Constraint::Length(4),
                Constraint::Length(11),
                Constraint::Length(7),
                Constraint::Fill(1),
            ],
        )
    };
    let title = format!(" Runs (last {}) ", e.recent_runs.len());
    if rows.is_empty() {
        let block = Block::bordered().title(Span::styled(title, theme.bold()));
        let text = Line::styled(" no runs yet", theme.dim());
        frame.render_widget(Paragraph::new(text).block(block), area);
        return;
    }
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme.header_row()))
        .block(Block::bordered().title(Span::styled(title, theme.bold())));
    frame.render_widget(table, area);
}

/// How many bars of `width` with `gap` fit in `area`'s inside.
fn bars_that_fit(area: Rect, width: u16, gap: u16) -> usize {
    usize::from(area.width.saturating_sub(2).saturating_add(gap) / (width + gap))
}

fn draw_durations(e: &EmployerView, theme: &Theme, frame: &mut Frame, area: Rect) {
    let n = bars_that_fit(area, 2, 1);
    // Oldest on the left.
    let runs: Vec<&RunSummary> = e.recent_runs.iter().take(n).rev().collect();
    let max = runs.iter().map(|r| r.duration_ms).max().unwrap_or(0);
    let bars: Vec<Bar> = runs
        .iter()
        .map(|r| {
            let style = match r.outcome {
                RunOutcomeKind::Ok => theme.ok(),
                RunOutcomeKind::Partial => theme.warn(),
                RunOutcomeKind::Failed => theme.error(),
                RunOutcomeKind::Cancelled => theme.dim(),
            };
            Bar::new(r.duration_ms).text_value("").style(style)
        })
        .collect();
    let title = format!(" Duration · max {} ", format::duration_ms(max));
    let chart = BarChart::default()
        .data(BarGroup::new(bars))
        .bar_width(2)
        .bar_gap(1)
        .block(Block::bordered().title(Span::styled(title, theme.bold())));
    frame.render_widget(chart, area);
}

fn draw_changes(e: &EmployerView, theme: &Theme, frame: &mut Frame, area: Rect) {
    let n = usize::from(area.width.saturating_sub(2));
    let data: Vec<u64> = e
        .recent_runs
        .iter()
        .take(n)
        .rev()
        .map(|r| r.inserted + r.updated + r.deleted)
        .collect();
    let max = data.iter().copied().max().unwrap_or(0);
    let title = format!(" Changes · max {max} ");
    let sparkline = Sparkline::default()
        .data(&data)
        .style(theme.health(arbosync_shared::Health::Running))
        .block(Block::bordered().title(Span::styled(title, theme.bold())));
    frame.render_widget(sparkline, area);
}

fn draw_retry_queue(model: &Model, e: &EmployerView, theme: &Theme, frame: &mut Frame, area: Rect) {
    let fit = usize::from(area.height.saturating_sub(3));
    let len = e.retry_queue.len();
    let selected = model.retry_selected.min(len.saturating_sub(1));
    let offset = window(selected, 0, len, fit);
    let rows: Vec<Row> = e
        .retry_queue
        .iter()
        .skip(offset)
        .take(fit)
        .map(|r| {
            Row::new(vec![
                Cell::from(r.entity.as_str()),
                Cell::from(r.record_id.as_str()),
                Cell::from(r.reason.as_str()).style(theme.error()),
                Cell::from(r.attempts.to_string()),
                Cell::from(format::ago(model.now, r.last_failed)),
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(12),
        Constraint::Length(12),
        Constraint::Fill(1),
        Constraint::Length(5),
        Constraint::Length(8),
    ];
    let title = format!(" Retry queue ({len}) ");
    let table = Table::new(rows, widths)
        .header(
            Row::new(vec!["Entity", "Record", "Reason", "Tries", "Last"]).style(theme.header_row()),
        )
        .block(Block::bordered().title(Span::styled(title, theme.bold())))
        .row_highlight_style(theme.selected())
        .highlight_symbol("> ")
        .highlight_spacing(HighlightSpacing::Always);
    let mut state = TableState::new();
    if len > 0 {
        state.select(Some(selected - offset));
    }
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_entities(e: &EmployerView, theme: &Theme, frame: &mut Frame, area: Rect) {
    let block = Block::bordered().title(Span::styled(" Rows per table ", theme.bold()));
    if e.entity_counts.is_empty() {
        frame.render_widget(
            Paragraph::new(Line::styled(" none yet", theme.dim())).block(block),
            area,
        );
        return;
    }
    let rows: Vec<Row> = e
        .entity_counts
        .iter()
        .map(|(table, count)| {
            Row::new(vec![
                Cell::from(table.as_str()),
                Cell::from(Line::from(count.to_string()).right_aligned()).style(theme.bold()),
            ])
        })
        .collect();
    let table = Table::new(rows, [Constraint::Fill(1), Constraint::Length(9)]).block(block);
    frame.render_widget(table, area);
}
