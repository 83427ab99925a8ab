//! `update()` for every key and every message: pure state changes and the commands they emit.

use std::time::Duration;

use arbosync_shared::{
    EmployerView, ErrorEntry, Event, Health, Progress, Reply, Request, RequestError, Role,
    RunOutcomeKind,
};
use arbosync_tui::dashboard::fixtures::{self, id};
use arbosync_tui::dashboard::model::{
    Back, Connection, Model, READ_ONLY_REASON, Refusal, Screen, ToastKind,
};
use arbosync_tui::dashboard::update::{Command, Msg, RequestFailure, page_rows, update};
use chrono::Duration as Span;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

fn key(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn ch(c: char) -> Msg {
    key(KeyCode::Char(c))
}

fn press(model: &mut Model, msg: Msg) -> Vec<Command> {
    update(model, msg)
}

fn toast(model: &Model) -> String {
    model
        .current_toast()
        .map(|t| t.text.clone())
        .unwrap_or_default()
}

fn selected_name(model: &Model) -> String {
    model
        .selected_employer()
        .map(|e| e.name.clone())
        .unwrap_or_default()
}

/// The fixture employers in overview order.
fn names(model: &Model) -> Vec<String> {
    model
        .visible_employers()
        .iter()
        .map(|e| e.name.clone())
        .collect()
}

fn index_of(model: &Model, n: u128) -> usize {
    model
        .visible_employers()
        .iter()
        .position(|e| e.id == id(n))
        .expect("fixture employer")
}

// ---------------------------------------------------------------- movement and navigation

#[test]
fn down_up_j_k_move_and_stop_at_the_ends() {
    let mut m = fixtures::model();
    let all = names(&m);
    assert_eq!(selected_name(&m), all[0]);
    assert!(press(&mut m, key(KeyCode::Down)).is_empty());
    assert_eq!(selected_name(&m), all[1]);
    press(&mut m, ch('j'));
    assert_eq!(selected_name(&m), all[2]);
    press(&mut m, ch('k'));
    assert_eq!(selected_name(&m), all[1]);
    press(&mut m, key(KeyCode::Up));
    press(&mut m, key(KeyCode::Up));
    assert_eq!(m.overview.selected, 0, "stops at the top");
    for _ in 0..50 {
        press(&mut m, ch('j'));
    }
    assert_eq!(m.overview.selected, all.len() - 1, "stops at the bottom");
}

#[test]
fn home_end_g_and_page_keys() {
    let mut m = fixtures::model();
    m.apply_snapshot(fixtures::large_snapshot(1000));
    m.size = (80, 24);
    let page = page_rows(&m);
    assert_eq!(page, 17);
    press(&mut m, key(KeyCode::PageDown));
    assert_eq!(m.overview.selected, page);
    assert_eq!(m.overview.offset, 1, "the selection stays on screen");
    press(&mut m, key(KeyCode::PageUp));
    assert_eq!(m.overview.selected, 0);
    assert_eq!(m.overview.offset, 0);
    press(&mut m, key(KeyCode::End));
    assert_eq!(m.overview.selected, 999);
    assert_eq!(m.overview.offset, 999 + 1 - page);
    press(&mut m, key(KeyCode::Home));
    assert_eq!(m.overview.selected, 0);
    press(&mut m, ch('G'));
    assert_eq!(m.overview.selected, 999);
    press(&mut m, ch('g'));
    assert_eq!((m.overview.selected, m.overview.offset), (0, 0));
}

#[test]
fn enter_opens_the_employer_and_esc_goes_back() {
    let mut m = fixtures::model();
    m.overview.selected = index_of(&m, 3);
    m.retry_selected = 7;
    assert!(press(&mut m, key(KeyCode::Enter)).is_empty());
    assert_eq!(
        m.screen,
        Screen::Detail {
            employer: id(3),
            from: Back::Overview
        }
    );
    assert_eq!(m.retry_selected, 0);
    // Down/up move through the retry queue on the detail screen.
    press(&mut m, ch('j'));
    assert_eq!(m.retry_selected, 1);
    press(&mut m, ch('j'));
    assert_eq!(m.retry_selected, 1, "two entries");
    press(&mut m, ch('k'));
    assert_eq!(m.retry_selected, 0);
    press(&mut m, key(KeyCode::Enter));
    assert!(
        matches!(m.screen, Screen::Detail { .. }),
        "Enter on detail does nothing"
    );
    press(&mut m, key(KeyCode::Esc));
    assert_eq!(m.screen, Screen::Overview);
    press(&mut m, key(KeyCode::Esc));
    assert_eq!(m.screen, Screen::Overview, "Esc on a clean overview stays");
}

#[test]
fn enter_on_an_error_opens_its_employer_and_esc_returns_to_errors() {
    let mut m = fixtures::model();
    press(&mut m, ch('2'));
    assert_eq!(m.screen, Screen::Errors);
    m.errors_list.selected = 2; // Transport Hollander's 503
    press(&mut m, key(KeyCode::Enter));
    assert_eq!(
        m.screen,
        Screen::Detail {
            employer: id(4),
            from: Back::Errors
        }
    );
    press(&mut m, key(KeyCode::Esc));
    assert_eq!(m.screen, Screen::Errors);
    // The agent-level error has no employer.
    press(&mut m, key(KeyCode::End));
    assert_eq!(m.errors_list.selected, 4);
    press(&mut m, key(KeyCode::Enter));
    assert_eq!(m.screen, Screen::Errors);
    assert!(toast(&m).contains("not about a configured employer"));
    press(&mut m, key(KeyCode::Esc));
    assert_eq!(m.screen, Screen::Overview);
}

#[test]
fn tab_backtab_and_number_keys_switch_screens() {
    let mut m = fixtures::model();
    press(&mut m, key(KeyCode::Tab));
    assert_eq!(m.screen, Screen::Errors);
    press(&mut m, key(KeyCode::Tab));
    assert_eq!(m.screen, Screen::Agent);
    press(&mut m, key(KeyCode::Tab));
    assert_eq!(m.screen, Screen::Overview);
    press(&mut m, key(KeyCode::BackTab));
    assert_eq!(m.screen, Screen::Agent);
    press(&mut m, ch('j'));
    assert_eq!(
        m.screen,
        Screen::Agent,
        "nothing to move on the agent screen"
    );
    press(&mut m, key(KeyCode::Esc));
    assert_eq!(m.screen, Screen::Overview);
    press(&mut m, ch('3'));
    assert_eq!(m.screen, Screen::Agent);
    press(&mut m, ch('2'));
    assert_eq!(m.screen, Screen::Errors);
    press(&mut m, ch('1'));
    assert_eq!(m.screen, Screen::Overview);
    // From a detail screen, Tab counts as being on the overview.
    press(&mut m, key(KeyCode::Enter));
    press(&mut m, key(KeyCode::Tab));
    assert_eq!(m.screen, Screen::Errors);
}

#[test]
fn question_mark_toggles_help_which_swallows_other_keys() {
    let mut m = fixtures::model();
    press(&mut m, ch('?'));
    assert!(m.help);
    assert!(
        press(&mut m, ch('s')).is_empty(),
        "actions are off under help"
    );
    press(&mut m, ch('j'));
    assert_eq!(m.overview.selected, 0);
    press(&mut m, ch('?'));
    assert!(!m.help);
    press(&mut m, ch('?'));
    press(&mut m, key(KeyCode::Esc));
    assert!(!m.help);
    press(&mut m, ch('?'));
    assert_eq!(press(&mut m, ch('q')), vec![Command::Quit]);
}

#[test]
fn q_and_ctrl_c_quit_from_anywhere() {
    let mut m = fixtures::model();
    assert_eq!(press(&mut m, ch('q')), vec![Command::Quit]);
    let ctrl_c = Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    m.filter_editing = true;
    assert_eq!(press(&mut m, ctrl_c.clone()), vec![Command::Quit]);
    m.filter_editing = false;
    press(&mut m, ch('S'));
    assert!(m.confirm.is_some());
    assert_eq!(press(&mut m, ctrl_c.clone()), vec![Command::Quit]);
    let mut blocked = Model::new("/s", fixtures::now(), true);
    assert_eq!(press(&mut blocked, ctrl_c), vec![Command::Quit]);
    assert_eq!(press(&mut blocked, ch('q')), vec![Command::Quit]);
}

#[test]
fn key_releases_and_unknown_keys_are_ignored() {
    let mut m = fixtures::model();
    let before = m.clone();
    let mut release = KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE);
    release.kind = KeyEventKind::Release;
    assert!(press(&mut m, Msg::Key(release)).is_empty());
    assert!(press(&mut m, ch('x')).is_empty());
    assert!(press(&mut m, key(KeyCode::F(5))).is_empty());
    assert!(press(&mut m, key(KeyCode::Backspace)).is_empty());
    assert_eq!(m, before);
}

// ---------------------------------------------------------------- filter

#[test]
fn slash_filters_the_overview() {
    let mut m = fixtures::model();
    press(&mut m, ch('j'));
    assert!(press(&mut m, ch('/')).is_empty());
    assert!(m.filter_editing);
    for c in "zuid".chars() {
        // Letters that are keys elsewhere (q, s, j) are text while editing.
        assert!(press(&mut m, ch(c)).is_empty());
    }
    assert_eq!(m.overview.filter, "zuid");
    assert_eq!(m.overview.selected, 0);
    assert_eq!(names(&m), ["Transport Hollander", "Zorggroep Het Baken"]);
    press(&mut m, key(KeyCode::Backspace));
    assert_eq!(m.overview.filter, "zui");
    press(&mut m, ch('d'));
    press(&mut m, key(KeyCode::Enter));
    assert!(!m.filter_editing, "Enter keeps the filter");
    assert_eq!(m.overview.filter, "zuid");
    press(&mut m, ch('j'));
    assert_eq!(selected_name(&m), "Zorggroep Het Baken");
    press(&mut m, key(KeyCode::Esc));
    assert!(m.overview.filter.is_empty(), "Esc clears a kept filter");
    assert_eq!(m.screen, Screen::Overview);
    assert_eq!(
        selected_name(&m),
        "Zorggroep Het Baken",
        "the selection follows"
    );
}

#[test]
fn filter_matches_health_and_connection_and_esc_cancels_editing() {
    let mut m = fixtures::model();
    press(&mut m, ch('/'));
    for c in "failed".chars() {
        press(&mut m, ch(c));
    }
    assert_eq!(names(&m), ["Transport Hollander"]);
    press(&mut m, key(KeyCode::Esc));
    assert!(!m.filter_editing);
    assert!(m.overview.filter.is_empty());
    press(&mut m, ch('/'));
    for c in "OOST".chars() {
        press(&mut m, ch(c));
    }
    assert_eq!(
        names(&m),
        ["Gemeentewerken Oosterpoort", "Schoonmaakbedrijf Glans"],
        "case-insensitive, on the connection"
    );
}

#[test]
fn slash_filters_errors_and_not_other_screens() {
    let mut m = fixtures::model();
    press(&mut m, ch('2'));
    press(&mut m, ch('/'));
    for c in "baken".chars() {
        press(&mut m, ch(c));
    }
    assert_eq!(m.visible_errors().len(), 2, "matches the employer's name");
    press(&mut m, key(KeyCode::Enter));
    press(&mut m, key(KeyCode::Esc));
    assert!(m.errors_list.filter.is_empty());
    assert_eq!(
        m.screen,
        Screen::Errors,
        "the first Esc only clears the filter"
    );
    press(&mut m, ch('3'));
    press(&mut m, ch('/'));
    assert!(!m.filter_editing);
    assert!(toast(&m).contains("filter works on"));
}

// ---------------------------------------------------------------- actions (admin)

#[test]
fn s_syncs_the_selected_employer() {
    let mut m = fixtures::model();
    m.overview.selected = index_of(&m, 4);
    assert_eq!(
        press(&mut m, ch('s')),
        vec![Command::Send(Request::SyncNow {
            employer: Some(id(4)),
            full: false
        })]
    );
    assert!(toast(&m).contains("sync requested for Transport Hollander"));
}

#[test]
fn f_runs_a_full_reconcile_without_confirmation() {
    let mut m = fixtures::model();
    m.overview.selected = index_of(&m, 1);
    assert_eq!(
        press(&mut m, ch('f')),
        vec![Command::Send(Request::SyncNow {
            employer: Some(id(1)),
            full: true
        })]
    );
    assert!(m.confirm.is_none());
}

#[test]
fn actions_on_the_detail_and_errors_screens_use_their_employer() {
    let mut m = fixtures::model();
    m.screen = Screen::Detail {
        employer: id(6),
        from: Back::Overview,
    };
    assert_eq!(
        press(&mut m, ch('s')),
        vec![Command::Send(Request::SyncNow {
            employer: Some(id(6)),
            full: false
        })]
    );
    m.screen = Screen::Errors;
    m.errors_list.selected = 3; // the reconnect error of employer 5
    assert_eq!(
        press(&mut m, ch('f')),
        vec![Command::Send(Request::SyncNow {
            employer: Some(id(5)),
            full: true
        })]
    );
    m.errors_list.selected = 4; // agent-level error
    assert!(press(&mut m, ch('s')).is_empty());
    assert!(toast(&m).contains("select an employer"));
    m.screen = Screen::Agent;
    assert!(press(&mut m, ch('p')).is_empty());
    assert!(toast(&m).contains("select an employer"));
}

#[test]
fn capital_s_asks_then_syncs_all() {
    let mut m = fixtures::model();
    assert!(press(&mut m, ch('S')).is_empty());
    let confirm = m.confirm.clone().expect("asks first");
    assert_eq!(confirm.prompt, "Sync ALL 11 active employers now?");
    assert_eq!(
        press(&mut m, ch('y')),
        vec![Command::Send(Request::SyncNow {
            employer: None,
            full: false
        })]
    );
    assert!(m.confirm.is_none());
    // Enter confirms too.
    press(&mut m, ch('S'));
    assert_eq!(press(&mut m, key(KeyCode::Enter)).len(), 1);
}

#[test]
fn capital_f_asks_then_reconciles_all_and_other_keys_cancel() {
    let mut m = fixtures::model();
    press(&mut m, ch('F'));
    assert!(
        m.confirm
            .as_ref()
            .expect("asks")
            .prompt
            .starts_with("Full reconcile of ALL")
    );
    assert_eq!(
        press(&mut m, ch('Y')),
        vec![Command::Send(Request::SyncNow {
            employer: None,
            full: true
        })]
    );
    for cancel in [ch('n'), key(KeyCode::Esc), ch('s'), ch('q')] {
        press(&mut m, ch('F'));
        assert!(press(&mut m, cancel).is_empty(), "anything but y cancels");
        assert!(m.confirm.is_none());
        assert_eq!(toast(&m), "cancelled");
    }
}

#[test]
fn p_pauses_an_active_employer_and_resumes_a_paused_one() {
    let mut m = fixtures::model();
    m.overview.selected = index_of(&m, 1);
    assert_eq!(
        press(&mut m, ch('p')),
        vec![Command::Send(Request::Pause { employer: id(1) })]
    );
    m.overview.selected = index_of(&m, 6);
    assert_eq!(
        press(&mut m, ch('p')),
        vec![Command::Send(Request::Resume { employer: id(6) })]
    );
}

#[test]
fn r_requeues_the_selected_retry_entry_on_the_detail_screen_only() {
    let mut m = fixtures::model();
    m.overview.selected = index_of(&m, 3);
    assert!(press(&mut m, ch('r')).is_empty());
    assert!(toast(&m).contains("open an employer"));
    press(&mut m, key(KeyCode::Enter));
    press(&mut m, ch('j'));
    assert_eq!(
        press(&mut m, ch('r')),
        vec![Command::Send(Request::Requeue {
            employer: id(3),
            entity: "absence".to_owned(),
            record_id: "abs-0192".to_owned(),
        })]
    );
    // An employer with an empty retry queue.
    m.screen = Screen::Detail {
        employer: id(1),
        from: Back::Overview,
    };
    m.retry_selected = 0;
    assert!(press(&mut m, ch('r')).is_empty());
    assert!(toast(&m).contains("no retry-queue entry"));
}

#[test]
fn read_only_sessions_get_the_reason_instead_of_actions() {
    let mut m = fixtures::model();
    m.role = Some(Role::ReadOnly);
    m.screen = Screen::Detail {
        employer: id(3),
        from: Back::Overview,
    };
    for c in ['s', 'f', 'p', 'r', 'S', 'F'] {
        m.toasts.clear();
        assert!(press(&mut m, ch(c)).is_empty(), "{c} must not send");
        assert!(m.confirm.is_none(), "{c} must not ask");
        let t = m.current_toast().expect("a reason");
        assert_eq!(t.kind, ToastKind::Error);
        assert_eq!(t.text, READ_ONLY_REASON);
    }
}

#[test]
fn actions_while_disconnected_say_so() {
    let mut m = fixtures::model();
    update(
        &mut m,
        Msg::Disconnected {
            reason: "closed".into(),
            retry_in: Duration::from_secs(1),
        },
    );
    assert!(press(&mut m, ch('s')).is_empty());
    assert_eq!(toast(&m), "not connected to the agent");
    // A confirmation that was open when the connection dropped is gone.
    let mut m = fixtures::model();
    press(&mut m, ch('S'));
    update(
        &mut m,
        Msg::Disconnected {
            reason: "closed".into(),
            retry_in: Duration::from_secs(1),
        },
    );
    assert!(m.confirm.is_none());
}

#[test]
fn no_selection_means_no_action() {
    let mut m = fixtures::model();
    m.overview.filter = "nothing matches this".into();
    m.clamp_selections();
    assert!(press(&mut m, ch('s')).is_empty());
    assert!(toast(&m).contains("select an employer"));
    assert!(press(&mut m, key(KeyCode::Enter)).is_empty());
    assert_eq!(m.screen, Screen::Overview);
}

// ---------------------------------------------------------------- connection screens

#[test]
fn connection_screens_take_r_enter_q_and_help_only() {
    let mut m = Model::new("/run/arbosync/agent.sock", fixtures::now(), true);
    update(
        &mut m,
        Msg::Refused {
            refusal: Refusal::NotRunning,
            retry_in: Duration::from_secs(4),
        },
    );
    assert_eq!(press(&mut m, ch('r')), vec![Command::ReconnectNow]);
    assert_eq!(
        press(&mut m, key(KeyCode::Enter)),
        vec![Command::ReconnectNow]
    );
    assert!(press(&mut m, ch('s')).is_empty());
    assert!(press(&mut m, ch('/')).is_empty());
    assert!(!m.filter_editing);
    assert!(press(&mut m, ch('2')).is_empty());
    assert_eq!(m.screen, Screen::Overview);
    press(&mut m, ch('?'));
    assert!(m.help);
    press(&mut m, ch('?'));
    assert_eq!(press(&mut m, ch('q')), vec![Command::Quit]);
}

#[test]
fn refusals_and_disconnects_count_attempts_and_schedule_the_retry() {
    let mut m = Model::new("/s", fixtures::now(), true);
    assert_eq!(m.connection, Connection::Connecting);
    update(
        &mut m,
        Msg::Refused {
            refusal: Refusal::NoPermission {
                message: "not in group".into(),
            },
            retry_in: Duration::from_millis(500),
        },
    );
    assert_eq!(
        m.connection,
        Connection::Refused {
            refusal: Refusal::NoPermission {
                message: "not in group".into()
            },
            attempt: 1,
            retry_at: fixtures::now() + Span::milliseconds(500),
        }
    );
    update(
        &mut m,
        Msg::Refused {
            refusal: Refusal::ProtocolMismatch {
                agent_version: "2.0.0".into(),
                agent_protocol: 2,
            },
            retry_in: Duration::from_secs(1),
        },
    );
    assert!(matches!(
        m.connection,
        Connection::Refused { attempt: 2, .. }
    ));
    update(
        &mut m,
        Msg::Disconnected {
            reason: "socket error".into(),
            retry_in: Duration::from_secs(2),
        },
    );
    assert!(matches!(m.connection, Connection::Lost { attempt: 3, .. }));
    update(
        &mut m,
        Msg::Connected {
            role: Role::ReadOnly,
            agent_version: "0.1.0".into(),
        },
    );
    assert_eq!(
        m.connection,
        Connection::Connected {
            since: fixtures::now()
        }
    );
    assert_eq!(m.role, Some(Role::ReadOnly));
    assert_eq!(m.agent_version.as_deref(), Some("0.1.0"));
    assert_eq!(toast(&m), "reconnected to the agent");
    update(
        &mut m,
        Msg::Disconnected {
            reason: "closed".into(),
            retry_in: Duration::from_secs(1),
        },
    );
    assert!(
        matches!(m.connection, Connection::Lost { attempt: 1, .. }),
        "counts restart"
    );
}

#[test]
fn reconnect_resumes_from_a_fresh_snapshot() {
    let mut m = fixtures::model();
    m.overview.selected = index_of(&m, 4);
    update(
        &mut m,
        Msg::Disconnected {
            reason: "closed".into(),
            retry_in: Duration::from_secs(1),
        },
    );
    assert!(m.has_data(), "stale data stays visible");
    update(
        &mut m,
        Msg::Connected {
            role: Role::Admin,
            agent_version: "0.1.1".into(),
        },
    );
    let mut fresh = fixtures::snapshot();
    fresh.employers.retain(|e| e.id != id(1));
    fresh.errors.clear();
    fresh.agent.version = "0.1.1".into();
    m.now = fixtures::now() + Span::seconds(30);
    update(&mut m, Msg::Snapshot(Box::new(fresh)));
    assert_eq!(m.employers.len(), 11);
    assert!(m.errors.is_empty());
    assert_eq!(m.agent.as_ref().map(|a| a.version.as_str()), Some("0.1.1"));
    assert_eq!(m.data_at, Some(fixtures::now() + Span::seconds(30)));
    assert_eq!(
        selected_name(&m),
        "Transport Hollander",
        "selection kept by id"
    );
}

// ---------------------------------------------------------------- events

#[test]
fn run_started_progress_and_finished() {
    let mut m = fixtures::model();
    let run_id = id(0xabc);
    let at = fixtures::now();
    update(
        &mut m,
        Msg::Event(Event::RunStarted {
            employer: id(1),
            run_id,
            full: true,
            at,
        }),
    );
    let e = m.employer(id(1)).expect("employer");
    assert_eq!(e.health, Health::Running);
    let running = e.running.as_ref().expect("running");
    assert_eq!(
        (running.run_id, running.full, running.started_at),
        (run_id, true, at)
    );
    assert_eq!(running.progress, Progress::Started);

    let applying = Progress::Applying { done: 5, total: 10 };
    update(
        &mut m,
        Msg::Event(Event::RunProgress {
            employer: id(1),
            run_id,
            progress: applying,
        }),
    );
    assert_eq!(
        m.employer(id(1))
            .and_then(|e| e.running.as_ref())
            .map(|r| r.progress),
        Some(applying)
    );

    let mut run = fixtures::runs(99, 1, 0, RunOutcomeKind::Failed).remove(0);
    run.run_id = run_id;
    let before = m.employer(id(1)).map(|e| e.recent_runs.len()).unwrap_or(0);
    update(
        &mut m,
        Msg::Event(Event::RunFinished {
            employer: id(1),
            run: run.clone(),
        }),
    );
    let e = m.employer(id(1)).expect("employer");
    assert!(e.running.is_none());
    assert_eq!(e.health, Health::Failed);
    assert_eq!(e.recent_runs.len(), before + 1);
    assert_eq!(e.recent_runs[0], run);
    assert_eq!(e.last_error, run.error);
    assert_eq!(e.last_error_at, Some(run.finished_at));
}

#[test]
fn progress_for_a_run_we_did_not_see_start_creates_it() {
    let mut m = fixtures::model();
    update(
        &mut m,
        Msg::Event(Event::RunProgress {
            employer: id(9),
            run_id: id(0xdef),
            progress: Progress::Fetching,
        }),
    );
    let running = m
        .employer(id(9))
        .and_then(|e| e.running.clone())
        .expect("running");
    assert_eq!(running.run_id, id(0xdef));
    assert_eq!(running.started_at, fixtures::now());
    assert_eq!(running.progress, Progress::Fetching);
}

#[test]
fn finished_runs_respect_pause_and_are_bounded() {
    let mut m = fixtures::model();
    for i in 0..60 {
        let run = fixtures::runs(i, 1, 0, RunOutcomeKind::Ok).remove(0);
        update(
            &mut m,
            Msg::Event(Event::RunFinished {
                employer: id(6),
                run,
            }),
        );
    }
    let e = m.employer(id(6)).expect("paused employer");
    assert_eq!(e.health, Health::Paused, "a paused employer stays paused");
    assert_eq!(e.recent_runs.len(), 50);
    let ok = fixtures::runs(1, 1, 0, RunOutcomeKind::Partial).remove(0);
    update(
        &mut m,
        Msg::Event(Event::RunFinished {
            employer: id(4),
            run: ok,
        }),
    );
    assert_eq!(m.employer(id(4)).map(|e| e.health), Some(Health::Partial));
    // Unknown employers are ignored.
    let before = m.clone();
    let run = fixtures::runs(1, 1, 0, RunOutcomeKind::Ok).remove(0);
    update(
        &mut m,
        Msg::Event(Event::RunFinished {
            employer: id(777),
            run,
        }),
    );
    assert_eq!(m, before);
}

fn employer_view(n: u128, name: &str) -> EmployerView {
    let mut e = fixtures::employers().remove(0);
    e.id = id(n);
    e.name = name.to_owned();
    e
}

#[test]
fn employer_changed_inserts_or_replaces_in_name_order() {
    let mut m = fixtures::model();
    m.overview.selected = index_of(&m, 4);
    update(
        &mut m,
        Msg::Event(Event::EmployerChanged {
            employer: Box::new(employer_view(50, "Aannemersbedrijf Aarts")),
        }),
    );
    assert_eq!(names(&m)[0], "Aannemersbedrijf Aarts");
    assert_eq!(
        selected_name(&m),
        "Transport Hollander",
        "selection follows its employer"
    );
    let mut paused = m.employer(id(1)).cloned().expect("employer");
    paused.paused = true;
    paused.health = Health::Paused;
    update(
        &mut m,
        Msg::Event(Event::EmployerChanged {
            employer: Box::new(paused),
        }),
    );
    assert_eq!(m.employers.len(), 13);
    assert_eq!(m.employer(id(1)).map(|e| e.health), Some(Health::Paused));
}

#[test]
fn employer_removed_leaves_its_detail_screen() {
    let mut m = fixtures::model();
    m.screen = Screen::Detail {
        employer: id(3),
        from: Back::Overview,
    };
    update(
        &mut m,
        Msg::Event(Event::EmployerRemoved { employer: id(3) }),
    );
    assert!(m.employer(id(3)).is_none());
    assert_eq!(m.screen, Screen::Overview);
    assert!(toast(&m).contains("removed"));
    // Removing the last employer in the list keeps the selection inside the list.
    press(&mut m, key(KeyCode::End));
    let last = m.selected_employer().map(|e| e.id).expect("selected");
    update(
        &mut m,
        Msg::Event(Event::EmployerRemoved { employer: last }),
    );
    assert_eq!(m.overview.selected, m.employers.len() - 1);
}

#[test]
fn error_recorded_goes_on_top_and_keeps_the_selected_error() {
    let mut m = fixtures::model();
    m.screen = Screen::Errors;
    m.errors_list.selected = 2;
    let selected = m.visible_errors()[2].clone();
    let new = ErrorEntry {
        at: fixtures::now(),
        employer: Some(id(1)),
        run_id: None,
        message: "Loket answered 429".into(),
    };
    update(
        &mut m,
        Msg::Event(Event::ErrorRecorded { error: new.clone() }),
    );
    assert_eq!(m.errors[0], new);
    assert_eq!(m.errors.len(), 6);
    assert_eq!(m.visible_errors()[m.errors_list.selected], &selected);
    for _ in 0..2000 {
        update(
            &mut m,
            Msg::Event(Event::ErrorRecorded { error: new.clone() }),
        );
    }
    assert_eq!(m.errors.len(), 1000, "bounded");
}

#[test]
fn agent_changed_and_resync() {
    let mut m = fixtures::model();
    let mut agent = fixtures::agent();
    agent.update.pending = Some("0.2.0".into());
    update(
        &mut m,
        Msg::Event(Event::AgentChanged {
            agent: Box::new(agent.clone()),
        }),
    );
    assert_eq!(m.agent.as_ref(), Some(&agent));
    let mut fresh = fixtures::snapshot();
    fresh.employers.truncate(3);
    update(
        &mut m,
        Msg::Event(Event::Resync {
            snapshot: Box::new(fresh),
        }),
    );
    assert_eq!(m.employers.len(), 3);
}

// ---------------------------------------------------------------- request results

#[test]
fn request_results_become_toasts_and_updates() {
    let mut m = fixtures::model();
    update(
        &mut m,
        Msg::RequestDone {
            request: Request::SyncNow {
                employer: Some(id(4)),
                full: false,
            },
            result: Ok(Reply::SyncQueued {
                employers: vec![id(4)],
            }),
        },
    );
    assert_eq!(toast(&m), "sync queued for Transport Hollander");
    update(
        &mut m,
        Msg::RequestDone {
            request: Request::SyncNow {
                employer: None,
                full: false,
            },
            result: Ok(Reply::SyncQueued {
                employers: vec![id(1), id(2), id(3)],
            }),
        },
    );
    assert_eq!(toast(&m), "sync queued for 3 employers");

    let mut paused = m.employer(id(1)).cloned().expect("employer");
    paused.paused = true;
    update(
        &mut m,
        Msg::RequestDone {
            request: Request::Pause { employer: id(1) },
            result: Ok(Reply::Employer {
                employer: Box::new(paused),
            }),
        },
    );
    assert!(m.employer(id(1)).is_some_and(|e| e.paused));
    assert_eq!(toast(&m), "paused Bakkerij De Korenschoof");

    let resumed = m.employer(id(6)).cloned().expect("employer");
    update(
        &mut m,
        Msg::RequestDone {
            request: Request::Resume { employer: id(6) },
            result: Ok(Reply::Employer {
                employer: Box::new(resumed),
            }),
        },
    );
    assert_eq!(toast(&m), "resumed Schoonmaakbedrijf Glans");

    let mut requeued = m.employer(id(3)).cloned().expect("employer");
    requeued.retry_queue.remove(0);
    update(
        &mut m,
        Msg::RequestDone {
            request: Request::Requeue {
                employer: id(3),
                entity: "employment".into(),
                record_id: "emp-7731".into(),
            },
            result: Ok(Reply::Employer {
                employer: Box::new(requeued),
            }),
        },
    );
    assert_eq!(m.employer(id(3)).map(|e| e.retry_queue.len()), Some(1));
    assert!(toast(&m).starts_with("requeued employment emp-7731"));
}

#[test]
fn request_errors_are_shown() {
    let mut m = fixtures::model();
    update(
        &mut m,
        Msg::RequestDone {
            request: Request::Pause { employer: id(1) },
            result: Err(RequestFailure::Agent(RequestError::NotPermitted {
                reason: "uid 1001 is read-only".into(),
            })),
        },
    );
    let t = m.current_toast().expect("toast");
    assert_eq!(t.kind, ToastKind::Error);
    assert_eq!(
        t.text,
        "the agent refused: not permitted: uid 1001 is read-only"
    );
    update(
        &mut m,
        Msg::RequestDone {
            request: Request::Pause { employer: id(1) },
            result: Err(RequestFailure::Connection(
                "the connection to the agent was closed".into(),
            )),
        },
    );
    assert_eq!(
        toast(&m),
        "request failed: the connection to the agent was closed"
    );
}

#[test]
fn snapshot_and_errors_replies() {
    let mut m = fixtures::model();
    let mut fresh = fixtures::snapshot();
    fresh.employers.truncate(2);
    update(
        &mut m,
        Msg::RequestDone {
            request: Request::Snapshot,
            result: Ok(Reply::Snapshot {
                snapshot: Box::new(fresh),
            }),
        },
    );
    assert_eq!(m.employers.len(), 2);
    let before = m.clone();
    update(
        &mut m,
        Msg::RequestDone {
            request: Request::Errors { employer: None },
            result: Ok(Reply::Errors {
                errors: Vec::new(),
                retry_queue: Vec::new(),
            }),
        },
    );
    assert_eq!(m, before);
}

// ---------------------------------------------------------------- ticks and resize

#[test]
fn ticks_move_time_and_expire_toasts() {
    let mut m = fixtures::model();
    m.toast(ToastKind::Info, "hello");
    m.toast(ToastKind::Error, "bad");
    update(&mut m, Msg::Tick(fixtures::now() + Span::seconds(6)));
    assert_eq!(m.now, fixtures::now() + Span::seconds(6));
    assert_eq!(toast(&m), "bad", "errors stay longer");
    update(&mut m, Msg::Tick(fixtures::now() + Span::seconds(9)));
    assert!(m.toasts.is_empty());
    for i in 0..10 {
        m.toast(ToastKind::Info, format!("t{i}"));
    }
    assert_eq!(m.toasts.len(), 5);
    assert_eq!(toast(&m), "t9");
}

#[test]
fn resize_changes_the_page_and_keeps_the_selection_visible() {
    let mut m = fixtures::model();
    m.apply_snapshot(fixtures::large_snapshot(1000));
    update(&mut m, Msg::Resize(160, 48));
    assert_eq!(m.size, (160, 48));
    assert_eq!(page_rows(&m), 41);
    press(&mut m, key(KeyCode::PageDown));
    assert_eq!(m.overview.selected, 41);
    update(&mut m, Msg::Resize(80, 24));
    assert!(m.overview.selected >= m.overview.offset);
    assert!(m.overview.selected < m.overview.offset + page_rows(&m));
    update(&mut m, Msg::Resize(10, 2));
    assert_eq!(page_rows(&m), 1);
}
