//! Recent errors across employers, newest first, filterable with `/`.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, HighlightSpacing, Row, Table, TableState};

use super::{Theme, window};
use crate::dashboard::format;
use crate::dashboard::model::Model;

/// From this width on, the run id column is shown.
const WIDE: u16 = 120;

pub fn draw(model: &Model, theme: &Theme, frame: &mut Frame, area: Rect) {
    let visible = model.visible_errors();
    let fit = usize::from(area.height.saturating_sub(3));
    let selected = model
        .errors_list
        .selected
        .min(visible.len().saturating_sub(1));
    let offset = window(selected, model.errors_list.offset, visible.len(), fit);
    let wide = area.width >= WIDE;

    let rows: Vec<Row> = visible
        .iter()
        .skip(offset)
        .take(fit)
        .map(|e| {
            let employer = match e.employer {
                Some(id) => model
                    .employer_name(id)
                    .map(str::to_owned)
                    .unwrap_or_else(|| short_id(&id.to_string())),
                None => "agent".to_owned(),
            };
            let mut cells = vec![
                Cell::from(format::ago(model.now, e.at)),
                Cell::from(employer),
            ];
            if wide {
                let run = e
                    .run_id
                    .map(|id| short_id(&id.to_string()))
                    .unwrap_or_default();
                cells.push(Cell::from(run).style(theme.dim()));
            }
            cells.push(Cell::from(e.message.as_str()).style(theme.error()));
            Row::new(cells)
        })
        .collect();

    let (header, widths) = if wide {
        (
            vec!["When", "Employer", "Run", "Error"],
            vec![
                Constraint::Length(8),
                Constraint::Length(28),
                Constraint::Length(8),
                Constraint::Fill(1),
            ],
        )
    } else {
        (
            vec!["When", "Employer", "Error"],
            vec![
                Constraint::Length(8),
                Constraint::Length(18),
                Constraint::Fill(1),
            ],
        )
    };

    let total = model.errors.len();
    let mut title = vec![Span::styled(" Errors ", theme.bold())];
    if model.errors_list.filter.is_empty() {
        title.push(Span::raw(total.to_string()));
    } else {
        title.push(Span::raw(format!(
            "{}/{total} matching \"{}\"",
            visible.len(),
            model.errors_list.filter
        )));
    }
    let retry: usize = model.employers.iter().map(|e| e.retry_queue.len()).sum();
    if retry > 0 {
        title.push(Span::styled(
            format!(" · {retry} in retry queues (⏎ opens the employer)"),
            theme.warn(),
        ));
    }
    title.push(Span::raw(" "));

    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme.header_row()))
        .block(Block::bordered().title(Line::from(title)))
        .row_highlight_style(theme.selected())
        .highlight_symbol("> ")
        .highlight_spacing(HighlightSpacing::Always);
    let mut state = TableState::new();
    if !visible.is_empty() {
        state.select(Some(selected - offset));
    }
    frame.render_stateful_widget(table, area, &mut state);
}

/// The first 8 characters of an id.
fn short_id(id: &str) -> String {
    id.chars().take(8).collect()
}
