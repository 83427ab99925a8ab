//! Option changes through the real binary, on SQLite and on PostgreSQL:
//! - switching `bsn` or `salary` off purges what they allowed, with journal rows, and the canary
//!   values then appear nowhere: not in the database (for SQLite: the file bytes, WAL included),
//!   not in the agent's output (debug logging on); absence comments never appear at all;
//! - any option change takes effect at the very next run: the employer's options fingerprint in
//!   the state store differs, so that run is a full reconciliation (with the purges it implies;
//!   a shorter `history_months` purges the absences that ended before the new window).

mod common_e2e;

use arbosync_agent::records::Entity;
use chrono::Days;
use common_e2e::*;
use loket_sim::{EmployeePatch, Uuid, World};

const CANARY_BSN: &str = "999999990";
const CANARY_BSN_EXCLUDED: &str = "999999989";
const CANARY_WAGE: f64 = 87654.32;
const CANARY_WAGE_TEXT: &str = "87654.32";
const CANARY_WAGE_EXCLUDED: f64 = 76543.21;
const CANARY_WAGE_EXCLUDED_TEXT: &str = "76543.21";
const CANARY_COMMENT: &str = "CANARY-COMMENT-b41d hernia en burn-out";

/// An open-ended employment of someone without absences, started before today.
fn open_employment(world: &World, employer: Uuid) -> (Uuid, Uuid) {
    let today = world.today;
    let er = sim_employer(world, employer);
    er.employee_ids
        .iter()
        .filter_map(|id| world.employees.get(id))
        .filter(|e| e.absence_ids.is_empty())
        .find_map(|e| {
            e.employment_ids.iter().find_map(|x| {
                let emp = world.employments.get(x)?;
                (emp.end_date.is_none()
                    && emp.start_date < today - Days::new(30)
                    && emp.wages.iter().all(|w| w.start_date < today))
                .then_some((e.id, emp.id))
            })
        })
        .expect("an open employment")
}

async fn purges_leave_no_trace(backend: Backend) {
    // P: everything on; Q: the privacy-minimal defaults.
    let mut env = Env::start(
        backend,
        sim_config(31, 2, 12),
        &[Opts::everything(), Opts::default()],
    )
    .await;
    let (p, q) = (env.employer(0), env.employer(1));
    let h = env.handle();
    let world = h.truth();
    let today = world.today;

    // Canaries at the source.
    let (pp, pe) = open_employment(&world, p);
    h.patch_employee(
        pp,
        EmployeePatch {
            bsn: Some(CANARY_BSN.into()),
            ..Default::default()
        },
    )
    .expect("BSN canary");
    h.change_wage(pe, today, CANARY_WAGE).expect("wage canary");
    for id in &sim_employer(&world, q).employee_ids {
        h.patch_employee(
            *id,
            EmployeePatch {
                bsn: Some(CANARY_BSN_EXCLUDED.into()),
                ..Default::default()
            },
        )
        .expect("BSN canary at Q");
    }
    // Q's person gets a sick report (so is in scope) with a comment, and a wage canary.
    let (qp, qe) = open_employment(&world, q);
    h.create_absence(qp, today, None, Some(CANARY_COMMENT.into()))
        .expect("comment canary");
    h.change_wage(qe, today, CANARY_WAGE_EXCLUDED)
        .expect("wage canary at Q");
    h.create_absence(pp, today, None, Some(CANARY_COMMENT.into()))
        .expect("comment canary");

    let mut tr = trackers(&env);
    env.step(&mut tr, &[], "initial sync").await;
    let stored = env.db.everything().await;
    assert!(
        stored.contains(CANARY_BSN),
        "sanity: P's BSN is stored while `bsn` is on"
    );
    assert!(
        stored.contains(CANARY_WAGE_TEXT),
        "sanity: P's wage is stored while `salary` is on"
    );
    assert!(!stored.contains(CANARY_BSN_EXCLUDED), "Q's BSN was stored");
    assert!(
        !stored.contains(CANARY_WAGE_EXCLUDED_TEXT),
        "Q's wage was stored"
    );
    assert!(
        !stored.contains(CANARY_COMMENT),
        "absence free text was stored"
    );
    let with_bsn = tr[0].model[&Entity::Employee]
        .values()
        .filter(|r| r["bsn"].is_some())
        .count();
    let salary_rows = tr[0].model[&Entity::SalaryPeriod].len();
    assert!(with_bsn > 1 && salary_rows > 1);

    // `bsn` off: every stored BSN is set to NULL, one `update ["bsn"]` row each.
    env.set_opts(
        0,
        Opts {
            bsn: false,
            ..Opts::everything()
        },
    );
    tr[0].opts = env.employers[0].1;
    let rows = env.step(&mut tr, &[], "bsn off").await;
    let rp = rows_of(&rows, p);
    assert_eq!(rp.len(), with_bsn);
    assert!(
        rp.iter()
            .all(|j| j.entity == "employee" && j.op == "update" && j.fields == ["bsn"])
    );
    assert!(rows_of(&rows, q).is_empty());
    assert!(
        !env.db.everything().await.contains(CANARY_BSN),
        "the purged BSN is still in the database ({:?})",
        backend
    );

    // `salary` off: every salary period is deleted, one `delete` row (all columns) each.
    env.set_opts(
        0,
        Opts {
            bsn: false,
            salary: false,
            ..Opts::everything()
        },
    );
    tr[0].opts = env.employers[0].1;
    let rows = env.step(&mut tr, &[], "salary off").await;
    let rp = rows_of(&rows, p);
    assert_eq!(rp.len(), salary_rows);
    assert_eq!(count(&rp, Entity::SalaryPeriod, "delete"), salary_rows);
    assert!(
        !env.db.everything().await.contains(CANARY_WAGE_TEXT),
        "the purged wage is still in the database ({:?})",
        backend
    );

    // Nothing that the options exclude, and no free text or token, ever reached the output.
    let output = env.all_output();
    assert!(output.len() > 1000, "debug logging was captured");
    for canary in [
        CANARY_BSN,
        CANARY_BSN_EXCLUDED,
        CANARY_WAGE_TEXT,
        CANARY_WAGE_EXCLUDED_TEXT,
        "8765432",
        CANARY_COMMENT,
        "CANARY",
        env.sim.refresh_token.as_str(),
    ] {
        if let Some(line) = output.lines().find(|l| l.contains(canary)) {
            panic!(
                "the agent's output contains {canary:?}: {}",
                &line[..line.len().min(400)]
            );
        }
    }
    let everything = env.db.everything().await;
    for canary in [CANARY_BSN_EXCLUDED, CANARY_WAGE_EXCLUDED_TEXT, "CANARY"] {
        assert!(
            !everything.contains(canary),
            "the database contains {canary:?}"
        );
    }
}

/// An option change: its name and what it does to the options.
type Change = (&'static str, fn(&mut Opts));

async fn option_changes_take_effect_at_the_next_run(backend: Backend) {
    // R changes its options step by step; S never does (its runs stay incremental).
    let start = Opts {
        all_employments: true,
        history_months: 3,
        ..Opts::default()
    };
    let mut env = Env::start(backend, sim_config(41, 2, 14), &[start, Opts::default()]).await;
    let (r, s) = (env.employer(0), env.employer(1));
    let mut tr = trackers(&env);
    env.step(&mut tr, &[], "initial sync").await;
    let everyone = tr[0].model[&Entity::Employee].len();

    let mut opts = start;
    let changes: Vec<Change> = vec![
        ("all_employments off", |o| o.all_employments = false),
        ("absences off", |o| o.absences = false),
        ("absences on", |o| o.absences = true),
        ("salary on", |o| o.salary = true),
        ("bsn on", |o| o.bsn = true),
        ("history_months 3 -> 24", |o| o.history_months = 24),
        ("history_months 24 -> 1", |o| o.history_months = 1),
        ("all_employments on", |o| o.all_employments = true),
    ];
    for (what, change) in changes {
        change(&mut opts);
        env.set_opts(0, opts);
        tr[0].opts = opts;
        let seq = env.db.max_seq().await;
        let doc = env.sync_ok(&[]).await;
        assert_eq!(
            outcome_of(&doc, r)["kind"],
            "full",
            "{what}: the option change makes the next run a full reconciliation"
        );
        assert_eq!(outcome_of(&doc, s)["kind"], "incremental", "{what}");
        let rows = env.check_run(&mut tr, &doc, seq, what).await;
        let rr = rows_of(&rows, r);
        assert!(!rr.is_empty(), "{what} changed nothing");
        match what {
            "all_employments off" => {
                let kept = tr[0].model[&Entity::Employee].len();
                assert!(kept < everyone);
                assert_eq!(count(&rr, Entity::Employee, "delete"), everyone - kept);
                assert!(rr.iter().all(|j| j.op == "delete" && j.fields.len() > 1));
            }
            "absences off" => {
                assert!(rr.iter().all(|j| j.op == "delete"
                    && (j.entity == "absence" || j.entity == "absence_progress")));
            }
            "absences on" | "salary on" => assert!(rr.iter().all(|j| j.op == "insert")),
            "bsn on" => assert!(rr.iter().all(|j| j.op == "update" && j.fields == ["bsn"])),
            "history_months 24 -> 1" => {
                // Out of scope now, or an absence that ended before the window: purged.
                assert!(rr.iter().all(|j| j.op == "delete" && j.fields.len() > 1));
                let left = &tr[0].model;
                let start = history_start(env.handle().truth().today, opts);
                assert!(left[&Entity::Absence].values().all(|a| {
                    a["last_day"]
                        .as_deref()
                        .is_none_or(|d| d >= start.format("%Y-%m-%d").to_string().as_str())
                }));
            }
            _ => {}
        }
        // The run after that is incremental again and finds nothing.
        let seq2 = env.db.max_seq().await;
        let doc = env.sync_ok(&[]).await;
        assert_eq!(outcome_of(&doc, r)["kind"], "incremental", "after {what}");
        let rows = env.check_run(&mut tr, &doc, seq2, what).await;
        assert!(rows.is_empty(), "after {what}: {rows:?}");
    }
    let rows = env
        .step(&mut tr, &["--full"], "final full reconciliation")
        .await;
    assert!(rows.is_empty(), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_leave_no_trace_on_sqlite() {
    purges_leave_no_trace(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_leave_no_trace_on_postgres() {
    purges_leave_no_trace(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn option_changes_take_effect_at_the_next_run_on_sqlite() {
    option_changes_take_effect_at_the_next_run(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn option_changes_take_effect_at_the_next_run_on_postgres() {
    option_changes_take_effect_at_the_next_run(Backend::Postgres).await;
}
