//! The full-screen connection messages: connecting, agent not running, no permission, protocol
//! version mismatch, and a lost connection with no data yet. Each says what to do next.

use arbosync_shared::PROTOCOL_VERSION;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use super::{Theme, centered};
use crate::dashboard::format;
use crate::dashboard::model::{Connection, Model, Refusal};

pub fn draw(model: &Model, theme: &Theme, frame: &mut Frame, area: Rect) {
    let socket = model.socket.as_str();
    let retry = |attempt: &u32, at: chrono::DateTime<chrono::Utc>| {
        let when = if at.signed_duration_since(model.now) >= chrono::Duration::seconds(1) {
            format!("Retrying {}", format::until(model.now, at))
        } else {
            "Retrying now".to_owned()
        };
        Line::styled(
            format!("{when} (attempt {attempt}) · r retries now · q quits"),
            theme.dim(),
        )
    };
    let (title, style, mut lines): (&str, Style, Vec<Line>) = match &model.connection {
        Connection::Connecting => (
            "Connecting",
            theme.warn(),
            vec![Line::raw(format!("Connecting to the agent at {socket}…"))],
        ),
        Connection::Connected { .. } => (
            "Connected",
            theme.ok(),
            vec![Line::raw("Waiting for the agent's first snapshot…")],
        ),
        Connection::Lost {
            reason,
            attempt,
            retry_at,
        } => (
            "Cannot reach the agent",
            theme.error(),
            vec![
                Line::raw(format!("The connection to {socket} failed: {reason}")),
                Line::raw(""),
                retry(attempt, *retry_at),
            ],
        ),
        Connection::Refused {
            refusal,
            attempt,
            retry_at,
        } => {
            let (title, mut lines) = match refusal {
                Refusal::NotRunning => (
                    "The agent is not running",
                    vec![
                        Line::raw(format!("No agent answers at {socket}.")),
                        Line::raw(""),
                        Line::raw("Start it:  sudo systemctl start arbosync-agent"),
                        Line::raw("or point --socket / ARBOSYNC_SOCKET at the agent's socket."),
                    ],
                ),
                Refusal::NoPermission { message } => (
                    "No permission to use the agent",
                    vec![
                        Line::raw(format!("The agent at {socket} refused this user:")),
                        Line::styled(message.clone(), theme.error()),
                        Line::raw(""),
                        Line::raw(
                            "Ask an administrator to add your user to the arbosync group, \
                             then log in again.",
                        ),
                    ],
                ),
                Refusal::ProtocolMismatch {
                    agent_version,
                    agent_protocol,
                } => (
                    "Protocol version mismatch",
                    vec![
                        Line::raw(format!(
                            "This dashboard speaks protocol v{PROTOCOL_VERSION}; agent \
                             {agent_version} speaks v{agent_protocol}."
                        )),
                        Line::raw(""),
                        Line::raw(
                            "Install the same release of arbosync and arbosync-agent \
                             (they ship in one package).",
                        ),
                    ],
                ),
            };
            if let Some(at) = model.data_at {
                lines.push(Line::raw(""));
                lines.push(Line::styled(
                    format!(
                        "Data last received {}; it refreshes when the agent is back.",
                        format::ago(model.now, at)
                    ),
                    theme.dim(),
                ));
            }
            lines.push(Line::raw(""));
            lines.push(retry(attempt, *retry_at));
            (title, theme.error(), lines)
        }
    };
    lines.insert(0, Line::raw(""));
    let width = area.width.saturating_sub(4).min(76);
    // Lines wrap inside the borders; count the rows they take.
    let inner = usize::from(width.saturating_sub(2)).max(1);
    let rows: usize = lines.iter().map(|l| l.width().max(1).div_ceil(inner)).sum();
    let height = u16::try_from(rows + 3).unwrap_or(u16::MAX);
    let popup = centered(area, width, height);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .centered()
            .block(Block::bordered().title(Span::styled(format!(" {title} "), style))),
        popup,
    );
}
