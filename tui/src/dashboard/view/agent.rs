//! The agent: version, uptime, update channel and pending update, state store size, socket,
//! config path, database target, and agent-level alerts.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use super::Theme;
use crate::dashboard::format;
use crate::dashboard::model::Model;

pub fn draw(model: &Model, theme: &Theme, frame: &mut Frame, area: Rect) {
    let Some(agent) = &model.agent else {
        return;
    };
    let now = model.now;
    let row = |key: &'static str, value: String| {
        Line::from(vec![
            Span::styled(format!(" {key:<18}"), theme.dim()),
            Span::raw(value),
        ])
    };
    let update = &agent.update;
    let mut lines = vec![
        row("Version", agent.version.clone()),
        row(
            "Running since",
            format!(
                "{} (up {})",
                agent.started_at.format("%Y-%m-%d %H:%M UTC"),
                format::span((now - agent.started_at).num_seconds())
            ),
        ),
        row("Database", agent.database.clone()),
        row("Config", agent.config_path.clone()),
        row("Socket", agent.socket_path.clone()),
        row("State directory", agent.state_dir.clone()),
        row("State store", format::bytes(agent.state_store_bytes)),
        Line::raw(""),
        row("Update channel", update.channel.clone()),
        row(
            "Pinned version",
            update.pinned.clone().unwrap_or_else(|| "no".to_owned()),
        ),
    ];
    lines.push(match &update.pending {
        Some(version) => Line::from(vec![
            Span::styled(format!(" {:<18}", "Pending update"), theme.dim()),
            Span::styled(format!("{version} (installed between runs)"), theme.warn()),
        ]),
        None => row("Pending update", "none".to_owned()),
    });
    lines.push(row(
        "Last check",
        update
            .last_check
            .map(|at| format::ago(now, at))
            .unwrap_or_else(|| "never".to_owned()),
    ));
    if let Some(failure) = &update.last_failure {
        lines.push(Line::from(vec![
            Span::styled(format!(" {:<18}", "Last update error"), theme.dim()),
            Span::styled(failure.as_str(), theme.error()),
        ]));
    }
    lines.push(Line::raw(""));
    let session = match (&model.agent_version, model.role) {
        (Some(_), Some(role)) => format!(
            "protocol v{} · {}",
            arbosync_shared::PROTOCOL_VERSION,
            match role {
                arbosync_shared::Role::Admin => "admin",
                arbosync_shared::Role::ReadOnly => "read-only",
            }
        ),
        _ => format!("protocol v{}", arbosync_shared::PROTOCOL_VERSION),
    };
    lines.push(row("This session", session));

    let alerts_height = if agent.alerts.is_empty() {
        3
    } else {
        u16::try_from(agent.alerts.len() + 2).unwrap_or(u16::MAX)
    };
    let [info, alerts] =
        Layout::vertical([Constraint::Min(3), Constraint::Max(alerts_height)]).areas(area);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(Span::styled(" Agent ", theme.bold()))),
        info,
    );
    let alert_lines: Vec<Line> = if agent.alerts.is_empty() {
        vec![Line::styled(" none", theme.dim())]
    } else {
        agent
            .alerts
            .iter()
            .map(|a| Line::styled(format!(" ! {a}"), theme.warn()))
            .collect()
    };
    frame.render_widget(
        Paragraph::new(alert_lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(Span::styled(
                format!(" Alerts ({}) ", agent.alerts.len()),
                theme.bold(),
            ))),
        alerts,
    );
}
