//! The help overlay (`?`): every key, and why actions are disabled for a read-only session.

use arbosync_shared::Role;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use super::{Theme, centered};
use crate::dashboard::model::{Model, READ_ONLY_REASON};

/// Keys and what they do; `true` marks the actions that need the admin role.
const KEYS: &[(&str, &str, bool)] = &[
    ("↑ ↓  k j", "move the selection", false),
    ("PgUp PgDn g G", "page, first, last", false),
    ("Enter", "open the employer", false),
    ("Esc", "back / clear the filter / close", false),
    ("Tab 1 2 3", "overview, errors, agent", false),
    ("/", "filter the list (Enter keeps it)", false),
    ("s", "sync the selected employer now", true),
    ("f", "full reconcile of the selected employer", true),
    ("S", "sync all employers (asks first)", true),
    ("F", "full reconcile of all (asks first)", true),
    ("p", "pause / resume the selected employer", true),
    ("r", "requeue the selected retry entry (detail)", true),
    ("?", "this help", false),
    ("q  Ctrl-C", "quit", false),
];

pub fn draw(model: &Model, theme: &Theme, frame: &mut Frame, area: Rect) {
    let read_only = model.role == Some(Role::ReadOnly);
    let mut lines: Vec<Line> = KEYS
        .iter()
        .map(|(key, what, mutating)| {
            let what_style = if *mutating && read_only {
                theme.dim()
            } else {
                ratatui::style::Style::new()
            };
            let suffix = if *mutating && read_only {
                " (disabled)"
            } else {
                ""
            };
            Line::from(vec![
                Span::styled(format!(" {key:<14}"), theme.key()),
                Span::styled(format!("{what}{suffix}"), what_style),
            ])
        })
        .collect();
    if read_only {
        lines.push(Line::raw(""));
        lines.push(Line::styled(format!(" {READ_ONLY_REASON}"), theme.warn()));
    }
    let width = 70;
    // Rows after wrapping inside the borders.
    let inner = usize::from(width - 2);
    let rows: usize = lines.iter().map(|l| l.width().max(1).div_ceil(inner)).sum();
    let height = u16::try_from(rows + 2).unwrap_or(u16::MAX);
    let popup = centered(area, width, height);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::bordered()
                .title(Span::styled(" Keys ", theme.title()))
                .title_bottom(Line::from(" ? or Esc closes ").right_aligned()),
        ),
        popup,
    );
}
