//! `view(model, frame)`: draws the model, nothing else. The frame is a header (tabs, connection
//! state, agent line), the current screen, a status line (confirmation, filter, toast, banner)
//! and a footer with the keys. The help overlay goes on top.
//!
//! Colours come from [`Theme`]; with `NO_COLOR` every meaning is also carried by text and
//! modifiers (bold, reversed), never by colour alone.

mod agent;
mod connection;
mod detail;
mod errors;
mod help;
mod overview;

use arbosync_shared::{EmployerView, Health, Progress, Role};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::format;
use super::model::{Connection, Model, Refusal, Screen, ToastKind, health_label};
use super::update::blocking_screen;

/// Draws the whole dashboard.
pub fn view(model: &Model, frame: &mut Frame) {
    let theme = Theme::new(model.color);
    let [header, body, status, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());

    draw_header(model, &theme, frame, header);
    if blocking_screen(model) {
        connection::draw(model, &theme, frame, body);
    } else {
        match model.screen {
            Screen::Overview => overview::draw(model, &theme, frame, body),
            Screen::Detail { employer, .. } => match model.employer(employer) {
                Some(e) => detail::draw(model, e, &theme, frame, body),
                None => overview::draw(model, &theme, frame, body),
            },
            Screen::Errors => errors::draw(model, &theme, frame, body),
            Screen::Agent => agent::draw(model, &theme, frame, body),
        }
    }
    draw_status(model, &theme, frame, status);
    draw_footer(model, &theme, frame, footer);
    if model.help {
        help::draw(model, &theme, frame, frame.area());
    }
}

/// Styles, with or without colour.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    color: bool,
}

impl Theme {
    pub fn new(color: bool) -> Self {
        Theme { color }
    }

    fn fg(&self, color: Color) -> Style {
        if self.color {
            Style::new().fg(color)
        } else {
            Style::new()
        }
    }

    pub fn health(&self, health: Health) -> Style {
        match health {
            Health::Ok => self.fg(Color::Green),
            Health::Running => self.fg(Color::Cyan).add_modifier(Modifier::BOLD),
            Health::Partial => self.fg(Color::Yellow),
            Health::Failed => self.fg(Color::Red).add_modifier(Modifier::BOLD),
            Health::NeedsReconnect => self.fg(Color::Magenta).add_modifier(Modifier::BOLD),
            Health::New => self.fg(Color::Blue),
            Health::Paused | Health::Inactive => self.dim(),
        }
    }

    pub fn title(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    pub fn bold(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    pub fn dim(&self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new().add_modifier(Modifier::DIM)
        }
    }

    pub fn key(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    pub fn ok(&self) -> Style {
        self.fg(Color::Green)
    }

    pub fn warn(&self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }

    pub fn error(&self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    pub fn selected(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    pub fn header_row(&self) -> Style {
        self.fg(Color::Cyan)
            .add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    }
}

/// The status badge of an employer, with progress while running.
pub fn badge(employer: &EmployerView) -> String {
    if let Some(running) = &employer.running {
        return match running.progress {
            Progress::Queued => "▶ queued".to_owned(),
            Progress::Started => "▶ running".to_owned(),
            Progress::Fetching => "▶ fetching".to_owned(),
            Progress::Applying { done, total } => {
                format!("▶ applying {}%", format::percent(done, total))
            }
        };
    }
    let symbol = match employer.health {
        Health::New => "○",
        Health::Ok => "✓",
        Health::Running => "▶",
        Health::Partial => "◐",
        Health::Failed => "✗",
        Health::NeedsReconnect => "!",
        Health::Paused => "‖",
        Health::Inactive => "·",
    };
    format!("{symbol} {}", health_label(employer.health))
}

/// The first visible row of a list of `len` rows showing `rows` at once, keeping `selected`
/// visible and starting from the model's `hint`.
pub fn window(selected: usize, hint: usize, len: usize, rows: usize) -> usize {
    let rows = rows.max(1);
    let mut offset = hint.min(len.saturating_sub(rows));
    if selected < offset {
        offset = selected;
    } else if selected >= offset + rows {
        offset = selected + 1 - rows;
    }
    offset
}

/// Centers a `width`×`height` box in `area`, clamped to it.
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

fn draw_header(model: &Model, theme: &Theme, frame: &mut Frame, area: Rect) {
    let [top, info] = Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);

    let mut tabs = vec![Span::styled(
        " arbosync ",
        theme.title().add_modifier(Modifier::REVERSED),
    )];
    let current = match model.screen {
        Screen::Overview | Screen::Detail { .. } => 1,
        Screen::Errors => 2,
        Screen::Agent => 3,
    };
    let error_count = model.errors.len();
    let names = [
        (1, "Overview".to_owned()),
        (2, format!("Errors ({error_count})")),
        (3, "Agent".to_owned()),
    ];
    for (n, name) in names {
        tabs.push(Span::raw(" "));
        let text = format!("{n} {name}");
        if n == current {
            tabs.push(Span::styled(
                format!("[{text}]"),
                theme.bold().add_modifier(Modifier::REVERSED),
            ));
        } else {
            tabs.push(Span::styled(format!(" {text} "), theme.dim()));
        }
    }

    let (state, style) = connection_state(model, theme);
    let state_width = u16::try_from(state.chars().count() + 1).unwrap_or(u16::MAX);
    let [left, right] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(state_width)]).areas(top);
    frame.render_widget(Paragraph::new(Line::from(tabs)), left);
    frame.render_widget(
        Paragraph::new(Line::styled(state, style)).right_aligned(),
        right,
    );

    let line = match &model.agent {
        Some(agent) => {
            // Uptime only while connected; otherwise say how old the data is.
            let age = if model.is_connected() {
                format!(
                    "up {}",
                    format::span((model.now - agent.started_at).num_seconds())
                )
            } else {
                let seen = model.data_at.unwrap_or(model.now);
                format!("data from {}", format::ago(model.now, seen))
            };
            let mut spans = vec![
                Span::styled(" agent ", theme.dim()),
                Span::styled(agent.version.clone(), theme.bold()),
                Span::styled(" · ", theme.dim()),
                Span::raw(age),
                Span::styled(" · ", theme.dim()),
                Span::raw(agent.database.clone()),
            ];
            if agent.update.pending.is_some() {
                spans.push(Span::styled(" · update pending", theme.warn()));
            }
            if !agent.alerts.is_empty() {
                spans.push(Span::styled(
                    format!(" · {} alert(s)", agent.alerts.len()),
                    theme.warn(),
                ));
            }
            Line::from(spans)
        }
        None => Line::styled(format!(" socket {}", model.socket), theme.dim()),
    };
    frame.render_widget(Paragraph::new(line), info);
}

fn connection_state(model: &Model, theme: &Theme) -> (String, Style) {
    match &model.connection {
        Connection::Connecting => ("◌ connecting…".to_owned(), theme.warn()),
        Connection::Connected { .. } => {
            let role = match model.role {
                Some(Role::Admin) => "admin",
                Some(Role::ReadOnly) | None => "read-only",
            };
            (format!("● connected · {role}"), theme.ok())
        }
        Connection::Lost { retry_at, .. } => {
            let text = if *retry_at > model.now {
                format!("◌ reconnecting {}", format::until(model.now, *retry_at))
            } else {
                "◌ reconnecting…".to_owned()
            };
            (text, theme.error())
        }
        Connection::Refused { refusal, .. } => {
            let text = match refusal {
                Refusal::NotRunning => "✗ agent not running",
                Refusal::NoPermission { .. } => "✗ no permission",
                Refusal::ProtocolMismatch { .. } => "✗ version mismatch",
            };
            (text.to_owned(), theme.error())
        }
    }
}

fn draw_status(model: &Model, theme: &Theme, frame: &mut Frame, area: Rect) {
    let line = if let Some(confirm) = &model.confirm {
        Line::from(vec![
            Span::styled(format!(" {} ", confirm.prompt), theme.warn()),
            Span::styled("y", theme.key()),
            Span::raw(" confirm · any other key cancels"),
        ])
    } else if model.filter_editing {
        let filter = match model.screen {
            Screen::Errors => &model.errors_list.filter,
            _ => &model.overview.filter,
        };
        Line::from(vec![
            Span::styled(" / ", theme.key()),
            Span::raw(format!("{filter}▏")),
            Span::styled("  Enter keep · Esc clear", theme.dim()),
        ])
    } else if let Some(toast) = model.current_toast() {
        let style = match toast.kind {
            ToastKind::Info => theme.ok(),
            ToastKind::Error => theme.error(),
        };
        Line::styled(format!(" {}", toast.text), style)
    } else if let Connection::Lost { reason, .. } = &model.connection
        && model.has_data()
    {
        let age = model
            .data_at
            .map(|at| format!(" from {}", format::ago(model.now, at)))
            .unwrap_or_default();
        Line::styled(
            format!(" disconnected: {reason} · data{age}"),
            theme.error(),
        )
    } else if let Some(line) = filter_hint(model, theme) {
        line
    } else if let Some(line) = selected_problem(model, theme) {
        line
    } else {
        return;
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// "filter: abc (/ edit · Esc clear)" while a list is filtered.
fn filter_hint(model: &Model, theme: &Theme) -> Option<Line<'static>> {
    let filter = match model.screen {
        Screen::Overview => &model.overview.filter,
        Screen::Errors => &model.errors_list.filter,
        _ => return None,
    };
    if filter.is_empty() {
        return None;
    }
    Some(Line::from(vec![
        Span::styled(" filter: ", theme.dim()),
        Span::styled(filter.clone(), theme.bold()),
        Span::styled("  (/ edit · Esc clear)", theme.dim()),
    ]))
}

/// On the overview, why the selected employer is not ok (narrow screens have no column for it).
fn selected_problem(model: &Model, theme: &Theme) -> Option<Line<'static>> {
    // Under a connection screen the employer's old error would be noise.
    if model.screen != Screen::Overview || !matches!(model.connection, Connection::Connected { .. })
    {
        return None;
    }
    let employer = model.selected_employer()?;
    if !matches!(
        employer.health,
        Health::Failed | Health::Partial | Health::NeedsReconnect
    ) {
        return None;
    }
    let error = employer.last_error.as_deref()?;
    Some(Line::from(vec![
        Span::styled(format!(" {}: ", employer.name), theme.bold()),
        Span::styled(error.to_owned(), theme.health(employer.health)),
    ]))
}

fn draw_footer(model: &Model, theme: &Theme, frame: &mut Frame, area: Rect) {
    let mut keys: Vec<(&str, &str)> = Vec::new();
    let mutating = model.role == Some(Role::Admin);
    if blocking_screen(model) {
        keys.extend([("r", "retry now"), ("?", "help"), ("q", "quit")]);
    } else {
        match model.screen {
            Screen::Overview => {
                keys.extend([("↑↓", "move"), ("⏎", "open")]);
                if mutating {
                    keys.extend([("s", "sync"), ("S", "all"), ("f", "full"), ("p", "pause")]);
                }
                keys.extend([("/", "filter"), ("tab", "view")]);
            }
            Screen::Detail { .. } => {
                keys.extend([("esc", "back"), ("↑↓", "retry entry")]);
                if mutating {
                    keys.extend([
                        ("s", "sync"),
                        ("f", "full"),
                        ("p", "pause"),
                        ("r", "requeue"),
                    ]);
                }
            }
            Screen::Errors => {
                keys.extend([("↑↓", "move"), ("⏎", "employer"), ("/", "filter")]);
                if mutating {
                    keys.extend([("s", "sync"), ("f", "full")]);
                }
                keys.push(("esc", "back"));
            }
            Screen::Agent => keys.extend([("esc", "back"), ("tab", "view")]),
        }
        keys.extend([("?", "help"), ("q", "quit")]);
    }
    let mut spans = Vec::new();
    for (key, what) in keys {
        spans.push(Span::styled(format!(" {key}"), theme.key()));
        spans.push(Span::raw(format!(" {what}")));
    }
    if !blocking_screen(model) && model.role == Some(Role::ReadOnly) {
        spans.push(Span::styled("  read-only: actions disabled", theme.warn()));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
