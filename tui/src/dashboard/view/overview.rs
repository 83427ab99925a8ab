//! The overview: one row per employer with its badge, last run, changes, errors and next run.
//! Wide terminals also get the connection and the last error. Only visible rows are built, so
//! the frame time does not grow with the number of employers.

use arbosync_shared::{EmployerView, Health};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, HighlightSpacing, Row, Table, TableState};

use super::{Theme, badge, window};
use crate::dashboard::format;
use crate::dashboard::model::Model;

/// From this width on, the extra columns are shown.
const WIDE: u16 = 120;

pub fn draw(model: &Model, theme: &Theme, frame: &mut Frame, area: Rect) {
    let visible = model.visible_employers();
    let rows_fit = usize::from(area.height.saturating_sub(3));
    let selected = model.overview.selected.min(visible.len().saturating_sub(1));
    let offset = window(selected, model.overview.offset, visible.len(), rows_fit);
    let wide = area.width >= WIDE;

    let rows: Vec<Row> = visible
        .iter()
        .skip(offset)
        .take(rows_fit)
        .map(|e| row(model, theme, e, wide))
        .collect();

    let header: Vec<&str> = if wide {
        vec![
            "Status",
            "Employer",
            "Connection",
            "Last run",
            "Changes",
            "Errors",
            "Next run",
            "Last error",
        ]
    } else {
        vec!["Status", "Employer", "Last run", "Changes", "Err", "Next"]
    };
    let widths: Vec<Constraint> = if wide {
        vec![
            Constraint::Length(14),
            Constraint::Length(28),
            Constraint::Length(12),
            Constraint::Length(16),
            Constraint::Length(14),
            Constraint::Length(6),
            Constraint::Length(8),
            Constraint::Fill(1),
        ]
    } else {
        vec![
            Constraint::Length(14),
            Constraint::Fill(1),
            Constraint::Length(13),
            Constraint::Length(11),
            Constraint::Length(3),
            Constraint::Length(7),
        ]
    };

    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme.header_row()))
        .block(Block::bordered().title(title(model, theme, visible.len())))
        .row_highlight_style(theme.selected())
        .highlight_symbol("> ")
        .highlight_spacing(HighlightSpacing::Always);
    let mut state = TableState::new();
    if !visible.is_empty() {
        state.select(Some(selected - offset));
    }
    frame.render_stateful_widget(table, area, &mut state);
}

fn title(model: &Model, theme: &Theme, shown: usize) -> Line<'static> {
    let total = model.employers.len();
    let mut spans = vec![Span::styled(" Employers ", theme.bold())];
    if model.overview.filter.is_empty() {
        spans.push(Span::raw(format!("{total}")));
    } else {
        spans.push(Span::raw(format!(
            "{shown}/{total} matching \"{}\"",
            model.overview.filter
        )));
    }
    let counts = model.health_counts();
    for (label, health) in [
        ("running", Health::Running),
        ("failed", Health::Failed),
        ("partial", Health::Partial),
        ("reconnect", Health::NeedsReconnect),
        ("paused", Health::Paused),
    ] {
        if let Some(n) = counts.get(label) {
            spans.push(Span::raw(" · "));
            spans.push(Span::styled(format!("{n} {label}"), theme.health(health)));
        }
    }
    spans.push(Span::raw(" "));
    Line::from(spans)
}

fn row<'a>(model: &Model, theme: &Theme, e: &'a EmployerView, wide: bool) -> Row<'a> {
    let now = model.now;
    let last = match e.last_run() {
        Some(run) => {
            let sep = if wide { " · " } else { " " };
            format!(
                "{}{sep}{}",
                format::ago(now, run.finished_at),
                format::duration_ms(run.duration_ms)
            )
        }
        None => "never".to_owned(),
    };
    let changes = e
        .last_run()
        .map(|r| format::changes(r.inserted, r.updated, r.deleted))
        .unwrap_or_default();
    let errors = match e.retry_queue.len() {
        0 => Cell::from(""),
        n => Cell::from(n.to_string()).style(theme.warn()),
    };
    let next = match (e.active, e.paused, e.next_run_at) {
        (false, _, _) => "—".to_owned(),
        (true, true, _) => "paused".to_owned(),
        (true, false, Some(at)) => format::until(now, at),
        (true, false, None) => "—".to_owned(),
    };
    let mut cells = vec![
        Cell::from(badge(e)).style(theme.health(e.health)),
        Cell::from(e.name.as_str()),
    ];
    if wide {
        cells.push(Cell::from(e.connection.as_str()));
    }
    cells.extend([
        Cell::from(last),
        Cell::from(changes),
        errors,
        Cell::from(next),
    ]);
    if wide {
        // An old error of an employer that has recovered since is not news.
        let current = matches!(
            e.health,
            Health::Failed | Health::Partial | Health::NeedsReconnect
        );
        let error = if current {
            e.last_error.as_deref().unwrap_or("")
        } else {
            ""
        };
        cells.push(Cell::from(error).style(theme.error()));
    }
    Row::new(cells)
}
