//! Snapshots of every dashboard screen at 80×24 and 160×48, drawn from fixed models with
//! ratatui's `TestBackend`, plus checks that `NO_COLOR` really removes colour and that tiny or
//! huge inputs draw without panicking.

use arbosync_shared::{Role, RunOutcomeKind};
use arbosync_tui::dashboard::fixtures;
use arbosync_tui::dashboard::model::{Confirm, Connection, Model, Refusal, Screen, ToastKind};
use arbosync_tui::dashboard::view::view;
use chrono::Duration;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

fn terminal(model: &Model, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
    terminal.draw(|f| view(model, f)).expect("draw");
    terminal
}

fn render(model: &Model, width: u16, height: u16) -> String {
    terminal(model, width, height).backend().to_string()
}

/// Snapshots `model` at both sizes as `NAME_80x24` and `NAME_160x48`.
fn snap(name: &str, model: &Model) {
    for (w, h) in SIZES {
        let mut model = model.clone();
        model.size = (w, h);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), render(&model, w, h));
    }
}

fn detail(model: &mut Model, n: u128) {
    model.screen = Screen::Detail {
        employer: fixtures::id(n),
        from: arbosync_tui::dashboard::model::Back::Overview,
    };
}

#[test]
fn overview() {
    let mut model = fixtures::model();
    model.overview.selected = 2;
    snap("overview", &model);
}

#[test]
fn overview_shows_why_the_selected_employer_failed() {
    let mut model = fixtures::model();
    model.reselect_overview(Some(fixtures::id(4)));
    let text = render(&model, 80, 24);
    assert!(
        text.contains("Transport Hollander: Loket answered 503 after 5 attempts"),
        "{text}"
    );
    snap("overview_failed_selected", &model);
}

#[test]
fn overview_read_only_with_filter() {
    let mut model = fixtures::model();
    model.role = Some(Role::ReadOnly);
    model.overview.filter = "o".to_owned();
    snap("overview_read_only_filtered", &model);
}

#[test]
fn overview_editing_filter() {
    let mut model = fixtures::model();
    model.overview.filter = "zuid".to_owned();
    model.filter_editing = true;
    snap("overview_filter_editing", &model);
}

#[test]
fn overview_confirm_sync_all() {
    let mut model = fixtures::model();
    model.confirm = Some(Confirm {
        prompt: "Sync ALL 11 active employers now?".to_owned(),
        request: arbosync_shared::Request::SyncNow {
            employer: None,
            full: false,
        },
    });
    snap("overview_confirm", &model);
}

#[test]
fn overview_toast() {
    let mut model = fixtures::model();
    model.toast(
        ToastKind::Error,
        "the agent refused: the agent is shutting down",
    );
    snap("overview_toast", &model);
}

#[test]
fn overview_connection_lost_keeps_stale_data() {
    let mut model = fixtures::model();
    model.connection = Connection::Lost {
        reason: "the connection to the agent was closed".to_owned(),
        attempt: 2,
        retry_at: fixtures::now() + Duration::seconds(2),
    };
    model.data_at = Some(fixtures::now() - Duration::seconds(12));
    snap("overview_lost", &model);
}

#[test]
fn detail_partial_with_retry_queue() {
    let mut model = fixtures::model();
    detail(&mut model, 3);
    model.retry_selected = 1;
    snap("detail_partial", &model);
}

#[test]
fn detail_running() {
    let mut model = fixtures::model();
    detail(&mut model, 2);
    snap("detail_running", &model);
}

#[test]
fn detail_new_employer_without_runs() {
    let mut model = fixtures::model();
    detail(&mut model, 8);
    snap("detail_new", &model);
}

#[test]
fn errors() {
    let mut model = fixtures::model();
    model.screen = Screen::Errors;
    model.errors_list.selected = 2;
    snap("errors", &model);
}

#[test]
fn errors_filtered() {
    let mut model = fixtures::model();
    model.screen = Screen::Errors;
    model.errors_list.filter = "loket".to_owned();
    snap("errors_filtered", &model);
}

#[test]
fn agent() {
    let mut model = fixtures::model();
    model.screen = Screen::Agent;
    snap("agent", &model);
}

#[test]
fn help_overlay() {
    let mut model = fixtures::model();
    model.help = true;
    snap("help", &model);
}

#[test]
fn help_overlay_read_only() {
    let mut model = fixtures::model();
    model.role = Some(Role::ReadOnly);
    model.help = true;
    snap("help_read_only", &model);
}

fn disconnected() -> Model {
    Model::new("/run/arbosync/agent.sock", fixtures::now(), true)
}

#[test]
fn connecting() {
    snap("connecting", &disconnected());
}

#[test]
fn agent_not_running() {
    let mut model = disconnected();
    model.connection = Connection::Refused {
        refusal: Refusal::NotRunning,
        attempt: 3,
        retry_at: fixtures::now() + Duration::seconds(4),
    };
    snap("not_running", &model);
}

#[test]
fn agent_not_running_after_data() {
    let mut model = fixtures::model();
    model.connection = Connection::Refused {
        refusal: Refusal::NotRunning,
        attempt: 5,
        retry_at: fixtures::now() + Duration::seconds(10),
    };
    model.data_at = Some(fixtures::now() - Duration::seconds(95));
    snap("not_running_stale", &model);
}

#[test]
fn no_permission() {
    let mut model = disconnected();
    model.connection = Connection::Refused {
        refusal: Refusal::NoPermission {
            message: "uid 1001 is not in the arbosync group".to_owned(),
        },
        attempt: 1,
        retry_at: fixtures::now() + Duration::seconds(1),
    };
    snap("no_permission", &model);
}

#[test]
fn protocol_mismatch() {
    let mut model = disconnected();
    model.connection = Connection::Refused {
        refusal: Refusal::ProtocolMismatch {
            agent_version: "0.4.0".to_owned(),
            agent_protocol: 2,
        },
        attempt: 1,
        retry_at: fixtures::now() + Duration::seconds(1),
    };
    snap("protocol_mismatch", &model);
}

#[test]
fn lost_before_any_data() {
    let mut model = disconnected();
    model.connection = Connection::Lost {
        reason: "protocol error: expected a welcome, got event".to_owned(),
        attempt: 1,
        retry_at: fixtures::now() + Duration::seconds(1),
    };
    snap("lost_no_data", &model);
}

#[test]
fn no_color_uses_no_colours_but_keeps_meaning() {
    let mut model = fixtures::model();
    model.color = false;
    for screen in [
        Screen::Overview,
        Screen::Errors,
        Screen::Agent,
        Screen::Detail {
            employer: fixtures::id(3),
            from: arbosync_tui::dashboard::model::Back::Overview,
        },
    ] {
        model.screen = screen;
        let terminal = terminal(&model, 160, 48);
        let buffer = terminal.backend().buffer();
        for cell in buffer.content() {
            assert_eq!(
                cell.fg,
                Color::Reset,
                "{screen:?}: a cell has a foreground colour"
            );
            assert_eq!(
                cell.bg,
                Color::Reset,
                "{screen:?}: a cell has a background colour"
            );
        }
    }
    // The badges still say what they mean, as text.
    model.screen = Screen::Overview;
    let text = render(&model, 160, 48);
    for badge in [
        "✓ ok",
        "▶ applying 45%",
        "◐ partial",
        "✗ failed",
        "! reconnect",
        "‖ paused",
        "· inactive",
        "○ new",
    ] {
        assert!(text.contains(badge), "missing badge {badge:?}");
    }

    // And the colour theme does use colour.
    model.color = true;
    let terminal = terminal(&model, 160, 48);
    assert!(
        terminal
            .backend()
            .buffer()
            .content()
            .iter()
            .any(|c| c.fg != Color::Reset),
        "the colour theme should colour something"
    );
}

#[test]
fn tiny_and_odd_sizes_draw_without_panicking() {
    let mut model = fixtures::model();
    for screen in [
        Screen::Overview,
        Screen::Errors,
        Screen::Agent,
        Screen::Detail {
            employer: fixtures::id(3),
            from: arbosync_tui::dashboard::model::Back::Overview,
        },
    ] {
        model.screen = screen;
        for help in [false, true] {
            model.help = help;
            for (w, h) in [(1, 1), (10, 3), (40, 10), (79, 23), (300, 100)] {
                render(&model, w, h);
            }
        }
    }
    let mut blocking = disconnected();
    blocking.connection = Connection::Refused {
        refusal: Refusal::NotRunning,
        attempt: 1,
        retry_at: fixtures::now(),
    };
    for (w, h) in [(1, 1), (10, 3), (40, 10)] {
        render(&blocking, w, h);
    }
}

#[test]
fn a_thousand_employers_scroll_to_the_selection() {
    let mut model = fixtures::model();
    model.apply_snapshot(fixtures::large_snapshot(1000));
    model.overview.selected = 500;
    model.overview.offset = 490;
    let text = render(&model, 80, 24);
    let selected = model.visible_employers()[500].name.clone();
    let line = text
        .lines()
        .find(|l| l.contains("> "))
        .expect("a highlighted row");
    assert!(
        line.contains(&selected[..18]),
        "selected row {line:?} is not {selected:?}"
    );
    assert!(text.contains("Employers 1000"), "{text}");
}

#[test]
fn run_history_renders_newest_first_with_outcomes() {
    let mut model = fixtures::model();
    detail(&mut model, 4);
    let text = render(&model, 160, 48);
    let first_run = text
        .lines()
        .position(|l| l.contains("✗ failed"))
        .expect("the failed run is listed");
    let ok_run = text
        .lines()
        .position(|l| l.contains("✓ ok") && l.contains("inc"))
        .expect("older ok runs are listed");
    assert!(first_run < ok_run, "newest (failed) run first");
    let runs = fixtures::runs(4, 12, 900, RunOutcomeKind::Failed);
    assert!(text.contains(&format!("Runs (last {})", runs.len())));
}
