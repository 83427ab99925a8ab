//! What Loket sends going wrong, through the real binary on SQLite and on PostgreSQL (R11, R12,
//! R14, R26 of `reliability-security.md` §4):
//! - R11: the employment list shifting while it is paged (a row on an earlier page deleted and
//!   one appended, so the count stays the same and one row is never seen) must not delete what
//!   still exists; the list growing while paged is read again; rows repeated within a page (a
//!   server joining a row twice) are written once, without PostgreSQL's "cannot affect row a
//!   second time";
//! - R12: unknown fields, a missing optional field, a new code-list value and a 1 MB string are
//!   stored as sent (or ignored) and the sync completes; a record the contract cannot hold (an
//!   employee without `employeeNumber`) goes to the retry queue and the run is `partial`;
//! - R14: records carry no version of their own, so the guard is that no older read commits
//!   after a newer one: one agent at a time (a second is refused at the state store's lock), and
//!   within a run the last read of a key wins (R11);
//! - R26: four poison records (three working-hours periods and an absence progress record
//!   without a start date) go to the retry queue (under their employment or the person's
//!   absence list, which later runs fetch again), the run is `partial`, everything else is
//!   stored; they stay queued across a restart and are derived again after the sled store is
//!   deleted; once Loket sends them properly the next run stores them and empties the queue; a
//!   stored record that turns bad is kept as stored, not deleted.

mod common_e2e;
mod fault_common;

use std::collections::BTreeSet;
use std::time::Duration;

use arbosync_agent::records::Entity;
use chrono::Days;
use common_e2e::*;
use fault_common::*;
use loket_sim::{FaultKind, FaultSpec, NewEmployee, Uuid};

fn opts() -> Opts {
    Opts {
        bsn: false,
        ..Opts::everything()
    }
}

/// No row that exists at the source is soft-deleted (every employer has all employments).
async fn no_false_deletes(env: &Env, what: &str) {
    let world = env.handle().truth();
    let source = source_ids(&world);
    for (id, _) in &env.employers {
        for entity in Entity::ALL {
            let wrong: BTreeSet<String> = env
                .db
                .soft_deleted(entity, *id)
                .await
                .into_iter()
                .filter(|x| source[&entity].contains(x))
                .collect();
            assert!(
                wrong.is_empty(),
                "{what}: {entity} rows that exist in Loket are marked deleted: {wrong:?}"
            );
        }
    }
}

fn hold_page(path: String, page: u32, ms: u64) -> FaultSpec {
    let mut f = FaultSpec::new(FaultKind::Latency);
    f.path_contains = Some(path);
    f.query_contains = Some(format!("pageNumber={page}&"));
    f.latency_ms = Some(ms);
    f.times = Some(1);
    f
}

/// Whether the simulator is serving (holding) page `page` of the list at `path` right now.
fn page_pending(env: &Env, path: &str, page: u32) -> bool {
    env.handle().arrivals().iter().any(|a| {
        a.path.ends_with(path)
            && a.query.starts_with(&format!("pageNumber={page}&"))
            && a.status == 0
    })
}

async fn pagination_shift(backend: Backend) {
    let env = Env::start(backend, sim_sized(101, 1, 30, 7), &[opts()]).await;
    let x = env.employer(0);
    let h = env.handle();
    let mut tr = trackers(&env);
    env.step(&mut tr, &[], "initial sync").await;

    // A full run reads the employment list page by page. While page 2 is being served, an
    // employment from page 1 is deleted and a new person is hired (appended): the count stays
    // the same, so the first row of the old page 2 moves to page 1 and is never seen.
    let world = h.truth();
    let er = sim_employer(&world, x);
    let victim = er.employment_ids[..7]
        .iter()
        .copied()
        .find(|e| {
            let p = &world.employees[&world.employments[e].employee_id];
            p.absence_ids.is_empty() && p.employment_ids.len() == 1
        })
        .expect("an employment on page 1 of someone without absences");
    let skipped = er.employment_ids[7];
    let list = format!("{x}/employees/employments");
    h.add_fault(hold_page(list.clone(), 2, 1500))
        .expect("fault");
    let mut p = spawn_agent(&env, &["sync", "--once", "--json", "--full"], &[], "shift");
    assert!(
        wait_for(Duration::from_secs(30), || page_pending(&env, &list, 2)).await,
        "page 2 was asked for: {}",
        p.output()
    );
    h.delete_employment(victim).expect("delete");
    h.add_employee(
        x,
        NewEmployee {
            first_name: None,
            last_name: None,
            start_date: Some(world.today - Days::new(3)),
        },
    )
    .expect("hire");
    let (code, _) = p.wait(Duration::from_secs(60)).await;
    // Partial at most: the deleted employment's histories may answer 404 mid-run.
    assert!(
        code == Some(0) || outcome_of(&p.doc(), x)["status"] == "partial",
        "{}",
        p.output()
    );
    eprintln!("employment {skipped} was not on any page of that run");

    // At most one extra (ordinary, incremental) run later nothing that exists is deleted, and
    // the database equals the truth apart from the deletion, which the next full run finds.
    env.sync_ok(&[]).await;
    no_false_deletes(&env, "one run after the shifted list").await;
    assert_journal_valid(&env.db, "after the shift").await;
    assert!(
        state_of(&env).1[&x].is_empty(),
        "a queued employment that Loket no longer has leaves the queue: {:?}",
        state_of(&env).1[&x]
    );
    assert_converged(&env, "R11 shift").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_shift_on_sqlite() {
    pagination_shift(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_shift_on_postgres() {
    pagination_shift(Backend::Postgres).await;
}

async fn growing_list_and_repeated_rows(backend: Backend) {
    // Pages of 13: the departments fit on one page, the employments take three.
    let env = Env::start(backend, sim_sized(102, 1, 30, 13), &[opts()]).await;
    let x = env.employer(0);
    let h = env.handle();
    let world = h.truth();

    // Rows repeated within single-page lists, on the initial sync: the departments and the
    // absence list of someone with several absences.
    let person = sim_employer(&world, x)
        .employee_ids
        .iter()
        .copied()
        .find(|p| world.employees[p].absence_ids.len() >= 2)
        .expect("someone with two absences");
    for path in [
        format!("{x}/departments"),
        format!("employees/{person}/absences"),
    ] {
        let mut f = FaultSpec::new(FaultKind::RepeatItem);
        f.path_contains = Some(path);
        f.times = Some(0);
        h.add_fault(f).expect("fault");
    }
    let mut tr = trackers(&env);
    // The oracle checks the journal row by row: a row written twice would show as an
    // unexpected second insert.
    env.step(&mut tr, &[], "initial sync with repeated rows")
        .await;
    let repeated = h
        .arrivals()
        .iter()
        .filter(|a| a.path.ends_with("/departments") || a.path.ends_with("/absences"))
        .count();
    assert!(repeated >= 2, "the repeated lists were read");
    h.clear_faults();

    // The employment list grows while it is paged (someone hired): the count no longer fits,
    // the list is read again, and the run stores what it read consistently.
    let list = format!("{x}/employees/employments");
    h.add_fault(hold_page(list.clone(), 2, 1500))
        .expect("fault");
    let mut p = spawn_agent(&env, &["sync", "--once", "--json", "--full"], &[], "grow");
    assert!(
        wait_for(Duration::from_secs(30), || page_pending(&env, &list, 2)).await,
        "page 2 was asked for"
    );
    h.add_employee(
        x,
        NewEmployee {
            first_name: None,
            last_name: None,
            start_date: Some(world.today - Days::new(1)),
        },
    )
    .expect("hire");
    let (code, _) = p.wait(Duration::from_secs(60)).await;
    assert_eq!(code, Some(0), "{}", p.output());
    assert!(
        p.output()
            .contains("loket list changed while paging; reading it again"),
        "the changed list is detected and read again"
    );
    // One more ordinary run brings in the new person (the employee list was read before the
    // hire); then everything equals the truth.
    env.sync_ok(&[]).await;
    no_false_deletes(&env, "after the growing list").await;
    assert_converged(&env, "R11 growing list and repeated rows").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_list_and_repeated_rows_on_sqlite() {
    growing_list_and_repeated_rows(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_list_and_repeated_rows_on_postgres() {
    growing_list_and_repeated_rows(Backend::Postgres).await;
}

fn patch(
    path: String,
    item: Option<String>,
    field: &str,
    value: Option<serde_json::Value>,
) -> FaultSpec {
    let mut f = FaultSpec::new(FaultKind::Patch);
    f.path_contains = Some(path);
    f.item_id = item;
    f.field = Some(field.to_string());
    f.value = value;
    f.times = Some(0);
    f
}

fn set(model: &mut Model, entity: Entity, id: Uuid, column: &'static str, value: Option<String>) {
    let row = model
        .get_mut(&entity)
        .and_then(|t| t.get_mut(&id.to_string()))
        .expect("the row is expected");
    row.insert(column, value);
}

async fn schema_drift(backend: Backend) {
    let env = Env::start(backend, sim_sized(103, 1, 12, 50), &[opts()]).await;
    let x = env.employer(0);
    let h = env.handle();
    let world = h.truth();
    let people: Vec<Uuid> = sim_employer(&world, x).employee_ids[..4].to_vec();
    let employees = format!("{x}/employees");
    let long = "L".repeat(1 << 20);
    for f in [
        // Unknown fields, at the top and nested.
        patch(
            employees.clone(),
            None,
            "futureField",
            Some(serde_json::json!({"a": [1, 2]})),
        ),
        patch(
            employees.clone(),
            None,
            "personalDetails.newThing",
            Some("x".into()),
        ),
        // A missing optional field.
        patch(
            employees.clone(),
            Some(people[0].to_string()),
            "personalDetails.initials",
            None,
        ),
        // A code-list value Loket added after this agent was built.
        patch(
            employees.clone(),
            Some(people[1].to_string()),
            "personalDetails.gender",
            Some(serde_json::json!({"key": 9, "value": "Anders"})),
        ),
        // A very long string.
        patch(
            employees.clone(),
            Some(people[2].to_string()),
            "personalDetails.lastName",
            Some(long.clone().into()),
        ),
        // A record the contract cannot hold: no employee number.
        patch(
            employees.clone(),
            Some(people[3].to_string()),
            "employeeNumber",
            None,
        ),
    ] {
        h.add_fault(f).expect("fault");
    }
    let (out, doc) = env.sync_with(&[], &[]).await;
    assert_eq!(out.status.code(), Some(1), "partial: {}", text(&out));
    let o = outcome_of(&doc, x);
    assert_eq!(o["status"], "partial", "{doc}");
    assert_eq!(o["failed"], 1, "{doc}");

    let mut want = expected(&world, x, opts(), None);
    set(&mut want, Entity::Employee, people[0], "initials", None);
    set(
        &mut want,
        Entity::Employee,
        people[1],
        "gender",
        Some("Anders".into()),
    );
    set(
        &mut want,
        Entity::Employee,
        people[1],
        "gender_code",
        Some("9".into()),
    );
    set(
        &mut want,
        Entity::Employee,
        people[2],
        "last_name",
        Some(long),
    );
    want.get_mut(&Entity::Employee)
        .expect("employees")
        .remove(&people[3].to_string());
    let diff = model_diff(&want, &env.db.live_model(x).await);
    assert!(diff.is_empty(), "drifted rows stored as sent:\n{diff}");
    assert_journal_valid(&env.db, "schema drift").await;
    let (_, retry) = state_of(&env);
    let queued: Vec<(String, String)> = retry[&x]
        .iter()
        .map(|e| (e.entity.clone(), e.record_id.clone()))
        .collect();
    assert_eq!(
        queued,
        [("employee".to_string(), people[3].to_string())],
        "the unusable record is in the retry queue"
    );

    // Loket's answers are normal again: a full run restores the truth and empties the queue.
    h.clear_faults();
    assert_converged(&env, "R12 after the drift").await;
    assert!(
        state_of(&env).1[&x].is_empty(),
        "the retry queue is empty once the record is stored: {:?}",
        state_of(&env).1[&x]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_drift_on_sqlite() {
    schema_drift(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_drift_on_postgres() {
    schema_drift(Backend::Postgres).await;
}

async fn poison_records(backend: Backend) {
    let env = Env::start(backend, sim_sized(104, 1, 20, 50), &[opts()]).await;
    let x = env.employer(0);
    let h = env.handle();
    let world = h.truth();
    // Three working-hours periods of three employments lose their start date, for good.
    let poison: Vec<(Uuid, Uuid)> = sim_employer(&world, x)
        .employment_ids
        .iter()
        .filter_map(|e| {
            world.employments[e]
                .working_hours
                .first()
                .map(|w| (*e, w.id))
        })
        .take(3)
        .collect();
    for (e, w) in &poison {
        h.add_fault(patch(
            format!("{e}/workinghours"),
            Some(w.to_string()),
            "startDate",
            None,
        ))
        .expect("fault");
    }
    // And the second progress record of someone's absence.
    let (sick, absence, progress) = sim_employer(&world, x)
        .employee_ids
        .iter()
        .flat_map(|p| world.employees[p].absence_ids.iter().map(move |a| (*p, *a)))
        .find_map(|(p, a)| world.absences[&a].progress.get(1).map(|r| (p, a, r.id)))
        .expect("an absence with two progress records");
    h.add_fault(patch(
        format!("absences/{absence}/absenceprogress"),
        Some(progress.to_string()),
        "startDate",
        None,
    ))
    .expect("fault");
    let mut want = expected(&world, x, opts(), None);
    for (_, w) in &poison {
        want.get_mut(&Entity::WorkweekPeriod)
            .expect("periods")
            .remove(&w.to_string());
    }
    want.get_mut(&Entity::AbsenceProgress)
        .expect("progress")
        .remove(&progress.to_string());
    let mut poisoned: BTreeSet<String> = poison.iter().map(|(_, w)| w.to_string()).collect();
    poisoned.insert(progress.to_string());
    // A record is fetched with its parent, so the parent is what is queued (and fetched again by
    // later runs): the employment for a history record, the person's absence list for a
    // progress record. The reason names the record.
    let mut parents: BTreeSet<(String, String)> = poison
        .iter()
        .map(|(e, _)| ("employment".to_string(), e.to_string()))
        .collect();
    parents.insert(("absence_employee".to_string(), sick.to_string()));
    let check = |what: &'static str, attempts: u32| {
        let env = &env;
        let want = &want;
        let parents = &parents;
        let poisoned = &poisoned;
        async move {
            let (out, doc) = env.sync_with(&[], &[]).await;
            assert_eq!(out.status.code(), Some(1), "{what}: {}", text(&out));
            let o = outcome_of(&doc, x);
            assert_eq!(o["status"], "partial", "{what}: {doc}");
            assert_eq!(o["failed"], 4, "{what}: {doc}");
            let diff = model_diff(want, &env.db.live_model(x).await);
            assert!(
                diff.is_empty(),
                "{what}: everything else is stored:\n{diff}"
            );
            assert_journal_valid(&env.db, what).await;
            let (_, retry) = state_of(env);
            let queued: BTreeSet<(String, String)> = retry[&x]
                .iter()
                .map(|e| (e.entity.clone(), e.record_id.clone()))
                .collect();
            assert_eq!(&queued, parents, "{what}: the poison records are queued");
            for e in &retry[&x] {
                assert_eq!(e.attempts, attempts, "{what}: {e:?}");
                assert!(
                    e.reason.contains("startDate")
                        && poisoned.iter().any(|w| e.reason.contains(w.as_str())),
                    "{what}: the reason names the record and the problem: {e:?}"
                );
            }
        }
    };
    check("initial sync", 1).await;
    check("after a restart", 2).await;
    std::fs::remove_dir_all(env.sled_dir()).expect("delete the sled store");
    check("after the sled store was deleted", 1).await;

    // Loket sends them properly again: the next ordinary run stores them (the retry queue has
    // their employments fetched again) and the queue is empty.
    h.clear_faults();
    let doc = env.sync_ok(&[]).await;
    assert_eq!(outcome_of(&doc, x)["kind"], "incremental", "{doc}");
    let stored = env.db.live_model(x).await;
    for w in &poisoned {
        assert!(
            stored[&Entity::WorkweekPeriod].contains_key(w)
                || stored[&Entity::AbsenceProgress].contains_key(w),
            "the retried record {w} is stored by the next run"
        );
    }
    assert!(
        state_of(&env).1[&x].is_empty(),
        "the retry queue is empty once the records are stored: {:?}",
        state_of(&env).1[&x]
    );
    assert_converged(&env, "R26").await;

    // A stored record that Loket starts sending broken (with a change elsewhere, so the
    // employments are read again) is queued and kept as stored, not deleted.
    let (e, w) = poison[0];
    h.add_fault(patch(
        format!("{e}/workinghours"),
        Some(w.to_string()),
        "startDate",
        None,
    ))
    .expect("fault");
    h.bump(x, Some(vec![e])).expect("bump");
    let seq = env.db.max_seq().await;
    let (out, doc) = env.sync_with(&[], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(outcome_of(&doc, x)["status"], "partial", "{doc}");
    assert!(
        env.db.journal(seq).await.is_empty(),
        "nothing deleted or changed: {:?}",
        env.db.journal(seq).await
    );
    assert_eq!(state_of(&env).1[&x].len(), 1);
    h.clear_faults();
    assert_converged(&env, "R26 stored record").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_on_sqlite() {
    poison_records(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_on_postgres() {
    poison_records(Backend::Postgres).await;
}

/// R14 in this design: Loket records carry no per-record version, so an older version can only
/// overwrite a newer one if an older read commits after a newer one. Within a run a batch keeps
/// the last read of a key (the R11 tests above); across runs only one agent can run at a time.
/// A second `sync --once` while one runs is refused at the state store's lock, writes nothing,
/// and leaves the first run's work intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_writer_at_a_time() {
    let env = Env::start(Backend::Sqlite, sim_sized(105, 1, 20, 50), &[opts()]).await;
    let x = env.employer(0);
    let h = env.handle();
    let mut tr = trackers(&env);
    env.step(&mut tr, &[], "initial sync").await;
    let world = h.truth();
    let p = healthy_person(&world, x, &[]);
    h.create_absence(p, world.today, None, None)
        .expect("absence");
    // The first run is held on the absence calendar for 8 s (longer than the 3 s a second
    // process waits for the state store's lock).
    let calendar = format!("{x}/employees/employments/calendar/absences");
    let mut hold = FaultSpec::new(FaultKind::Latency);
    hold.path_contains = Some(calendar.clone());
    hold.latency_ms = Some(8000);
    h.add_fault(hold).expect("fault");
    let seq = env.db.max_seq().await;
    let mut first = spawn_agent(&env, &["sync", "--once", "--json"], &[], "first");
    assert!(
        wait_for(Duration::from_secs(30), || h
            .arrivals()
            .iter()
            .any(|a| a.path.ends_with(&calendar) && a.status == 0))
        .await,
        "the first run is under way"
    );
    let (out, _) = env.sync_with(&[], &[]).await;
    assert_ne!(out.status.code(), Some(0), "the second agent is refused");
    assert!(
        text(&out).contains("state store"),
        "it says why: {}",
        text(&out)
    );
    assert!(
        first.child.try_wait().expect("poll").is_none(),
        "the first run was still going"
    );
    assert_eq!(
        env.db.max_seq().await,
        seq,
        "the second agent wrote nothing"
    );
    let (code, _) = first.wait(Duration::from_secs(60)).await;
    assert_eq!(code, Some(0), "{}", first.output());
    env.check_run(&mut tr, &first.doc(), seq, "the first run")
        .await;
    assert_converged(&env, "one writer at a time").await;
}
