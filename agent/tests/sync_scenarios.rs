//! Changes at the source, each reflected after the next `sync --once` of the real binary with
//! exactly the right journal rows, on SQLite and on PostgreSQL: a new absence, a partial and a full
//! recovery, corrected absence dates, withdrawn absences, a terminated employment, a department
//! move, an hours change, a salary change, a renamed department, a deleted employment (soft-deleted
//! at the next full reconciliation, not before), and people entering the scope of a
//! privacy-minimal employer through a first sick report or a dossier (case_watch).
//!
//! Every step is checked twice: against hand-written expectations (the rows named below) and
//! against the oracle in `common_e2e` (the whole difference between the truth before and after,
//! and every table equal to the truth). A final full reconciliation must find nothing left to do.

mod common_e2e;

use arbosync_agent::records::Entity;
use chrono::{Days, NaiveDate};
use common_e2e::*;
use loket_sim::{Uuid, World};

fn all_columns(entity: Entity) -> Vec<&'static str> {
    entity.columns().iter().map(|c| c.name).collect()
}

fn ins(entity: Entity, id: Uuid) -> J {
    J::new(entity, &id.to_string(), "insert", &all_columns(entity))
}

fn upd(entity: Entity, id: Uuid, fields: &[&str]) -> J {
    J::new(entity, &id.to_string(), "update", fields)
}

fn soft_del(entity: Entity, id: Uuid) -> J {
    J::new(entity, &id.to_string(), "delete", &["deleted_at"])
}

fn sorted(mut v: Vec<J>) -> Vec<J> {
    v.sort();
    v
}

/// A person with exactly one employment, open-ended, started long ago, whose period chains all
/// started before today, with wages, and without any absence.
fn simple_person(world: &World, employer: Uuid, skip: &[Uuid]) -> (Uuid, Uuid) {
    let today = world.today;
    let er = sim_employer(world, employer);
    er.employee_ids
        .iter()
        .filter(|id| !skip.contains(id))
        .filter_map(|id| world.employees.get(id))
        .filter(|e| e.absence_ids.is_empty() && e.employment_ids.len() == 1)
        .find_map(|e| {
            let emp = world.employments.get(&e.employment_ids[0])?;
            let chains_before_today = emp
                .organizational_entities
                .iter()
                .map(|o| o.start_date)
                .chain(emp.working_hours.iter().map(|w| w.start_date))
                .chain(emp.wages.iter().map(|w| w.start_date))
                .all(|d| d < today);
            (emp.end_date.is_none()
                && emp.start_date < today - Days::new(100)
                && chains_before_today
                && !emp.wages.is_empty())
            .then_some((e.id, emp.id))
        })
        .expect("the dataset has a simple person (change the seed if not)")
}

fn nth_person(world: &World, employer: Uuid, n: usize) -> Uuid {
    sim_employer(world, employer).employee_ids[n]
}

fn open_absence(world: &World, person: Uuid) -> Uuid {
    world.employees[&person]
        .absence_ids
        .iter()
        .copied()
        .find(|a| world.absences[a].end_of_absence.is_none())
        .expect("an open absence")
}

fn progress_ids(world: &World, absence: Uuid) -> Vec<Uuid> {
    world.absences[&absence]
        .progress
        .iter()
        .map(|p| p.id)
        .collect()
}

async fn scenarios(backend: Backend) {
    // X: everything (all employments, salary, BSN); Y: the privacy-minimal defaults.
    let env = Env::start(
        backend,
        sim_config(21, 2, 20),
        &[Opts::everything(), Opts::default()],
    )
    .await;
    let (x, y) = (env.employer(0), env.employer(1));
    let h = env.handle();
    let mut tr = trackers(&env);
    env.step(&mut tr, &[], "initial sync").await;

    let world = h.truth();
    let today: NaiveDate = world.today;

    // Nothing changed: no rows, and at most one request for the employers' versions, two per
    // employer (its employments' versions and the absence calendar) and one per open absence
    // (issue 7's B2 budget). Exactly the people with an open absence are asked for their
    // absences; people whose absences closed recently are not (the calendar shows their days
    // unchanged), and the dataset must have some for this to mean anything.
    let people: Vec<Uuid> = [x, y]
        .iter()
        .flat_map(|er| sim_employer(&world, *er).employee_ids.iter().copied())
        .collect();
    let has_open = |p: &Uuid| {
        world.employees[p]
            .absence_ids
            .iter()
            .any(|a| world.absences[a].end_of_absence.is_none())
    };
    let open_absences = people
        .iter()
        .flat_map(|p| world.employees[p].absence_ids.iter())
        .filter(|a| world.absences[*a].end_of_absence.is_none())
        .count() as u64;
    let recently_closed_only = people
        .iter()
        .filter(|p| !has_open(p))
        .filter(|p| {
            world.employees[*p].absence_ids.iter().any(|a| {
                world.absences[a]
                    .last_day()
                    .is_some_and(|d| d >= today - Days::new(42))
            })
        })
        .count();
    assert!(
        recently_closed_only > 0,
        "the dataset needs a person whose only recent absence is closed (change the seed)"
    );
    h.reset_stats();
    let rows = env.step(&mut tr, &[], "no change").await;
    assert!(rows.values().all(Vec::is_empty), "{rows:?}");
    let requests = h.stats().total;
    assert!(
        requests <= 1 + 2 * 2 + open_absences,
        "a no-change run made {requests} requests ({open_absences} open absences): {:#?}",
        h.stats().by_template
    );
    let asked: std::collections::BTreeSet<String> = h
        .requests()
        .iter()
        .filter(|r| r.template.ends_with("/employees/{employeeId}/absences"))
        .map(|r| r.path.clone())
        .collect();
    let expected: std::collections::BTreeSet<String> = people
        .iter()
        .filter(|p| has_open(p))
        .map(|p| format!("/v2/providers/employers/employees/{p}/absences"))
        .collect();
    assert_eq!(asked, expected);

    let (p1, _) = simple_person(&world, x, &[]);
    let (_p2, e2) = simple_person(&world, x, &[p1]);

    // A new absence: the absence and its first progress record.
    let a1 = h
        .create_absence(p1, today - Days::new(10), None, None)
        .expect("new absence");
    let a1p = progress_ids(&h.truth(), a1);
    let rows = env.step(&mut tr, &[], "new absence").await;
    assert_eq!(
        rows_of(&rows, x),
        sorted(vec![
            ins(Entity::Absence, a1),
            ins(Entity::AbsenceProgress, a1p[0])
        ])
    );
    assert!(rows_of(&rows, y).is_empty());

    // A partial recovery: a new progress record, the previous one ends, the absence's current
    // percentage drops.
    let a1p2 = h
        .add_absence_progress(a1, today - Days::new(3), 50)
        .expect("partial recovery");
    let rows = env.step(&mut tr, &[], "partial recovery").await;
    assert_eq!(
        rows_of(&rows, x),
        sorted(vec![
            upd(Entity::Absence, a1, &["current_incapacity_percentage"]),
            upd(Entity::AbsenceProgress, a1p[0], &["end_date"]),
            ins(Entity::AbsenceProgress, a1p2),
        ])
    );

    // A full recovery: the absence gets its last day and reason, the last progress record ends.
    h.close_absence(a1, today - Days::new(1), None)
        .expect("full recovery");
    let rows = env.step(&mut tr, &[], "full recovery").await;
    assert_eq!(
        rows_of(&rows, x),
        sorted(vec![
            upd(
                Entity::Absence,
                a1,
                &["last_day", "end_reason", "end_reason_code"]
            ),
            upd(Entity::AbsenceProgress, a1p2, &["end_date"]),
        ])
    );

    // Absence dates corrected: the first day of an open absence, the last day of a closed one.
    let p7 = nth_person(&world, x, 7);
    let a7 = open_absence(&world, p7);
    let a7p = progress_ids(&world, a7);
    let first7 = world.absences[&a7].first_day().expect("first day");
    h.correct_absence_first_day(a7, first7 - Days::new(2))
        .expect("first day corrected");
    h.close_absence(a1, today - Days::new(2), None)
        .expect("last day corrected");
    let rows = env.step(&mut tr, &[], "absence dates corrected").await;
    assert_eq!(
        rows_of(&rows, x),
        sorted(vec![
            upd(Entity::Absence, a7, &["first_day"]),
            upd(Entity::AbsenceProgress, a7p[0], &["start_date"]),
            upd(Entity::Absence, a1, &["last_day"]),
            upd(Entity::AbsenceProgress, a1p2, &["end_date"]),
        ])
    );

    // Absences withdrawn at the source: an open one, and one that closed two days ago (its
    // person has no other open absence, and the calendar no longer lists it).
    let p8 = nth_person(&world, x, 8);
    let a8 = open_absence(&world, p8);
    let a8p = progress_ids(&world, a8);
    assert_eq!(a8p.len(), 2);
    h.delete_absence(a8).expect("withdrawn");
    h.delete_absence(a1).expect("withdrawn");
    let rows = env.step(&mut tr, &[], "absences withdrawn").await;
    assert_eq!(
        rows_of(&rows, x),
        sorted(vec![
            soft_del(Entity::Absence, a8),
            soft_del(Entity::AbsenceProgress, a8p[0]),
            soft_del(Entity::AbsenceProgress, a8p[1]),
            soft_del(Entity::Absence, a1),
            soft_del(Entity::AbsenceProgress, a1p[0]),
            soft_del(Entity::AbsenceProgress, a1p2),
        ])
    );

    // An employment terminated.
    h.terminate_employment(e2, today + Days::new(30))
        .expect("terminated");
    let rows = env.step(&mut tr, &[], "employment terminated").await;
    assert_eq!(
        rows_of(&rows, x),
        vec![upd(Entity::Employment, e2, &["end_date"])]
    );

    // A department move: a new department period from today, the previous one ends yesterday.
    let w = h.truth();
    let emp2 = &w.employments[&e2];
    let current_dep = emp2
        .organizational_entities
        .last()
        .expect("a period")
        .clone();
    let other_dep = sim_employer(&w, x)
        .departments
        .iter()
        .find(|d| d.id != current_dep.department_id)
        .expect("another department")
        .id;
    let moved = h.change_department(e2, today, other_dep).expect("moved");
    let rows = env.step(&mut tr, &[], "department move").await;
    assert_eq!(
        rows_of(&rows, x),
        sorted(vec![
            ins(Entity::DepartmentPeriod, moved),
            upd(Entity::DepartmentPeriod, current_dep.id, &["end_date"]),
        ])
    );

    // An hours change.
    let previous_hours = emp2.working_hours.last().expect("hours").id;
    let hours = h.add_working_hours(e2, today, 30.5).expect("hours");
    let rows = env.step(&mut tr, &[], "hours change").await;
    assert_eq!(
        rows_of(&rows, x),
        sorted(vec![
            ins(Entity::WorkweekPeriod, hours),
            upd(Entity::WorkweekPeriod, previous_hours, &["end_date"]),
        ])
    );

    // A salary change (X has `salary` on).
    let previous_wage = emp2.wages.last().expect("wage").id;
    let wage = h.change_wage(e2, today, 4321.09).expect("wage");
    let rows = env.step(&mut tr, &[], "salary change").await;
    assert_eq!(
        rows_of(&rows, x),
        sorted(vec![
            ins(Entity::SalaryPeriod, wage),
            upd(Entity::SalaryPeriod, previous_wage, &["end_date"]),
        ])
    );

    // A salary change at Y (`salary` off): nothing stored, and no wages are even requested.
    let py = nth_person(&world, y, 7);
    let ey = world.employees[&py].employment_ids[0];
    h.change_wage(ey, today, 2500.0).expect("wage at Y");
    h.reset_stats();
    let rows = env.step(&mut tr, &[], "salary change without salary").await;
    assert!(rows.is_empty(), "{rows:?}");
    assert!(
        !h.requests().iter().any(|r| r.path.ends_with("/wages")),
        "wages were fetched although no employer that changed has `salary` on"
    );

    // A renamed department, at both employers.
    let dep_x = sim_employer(&w, x).departments[0].id;
    let dep_y = sim_employer(&w, y).departments[0].id;
    h.rename_department(dep_x, "Herstel en Preventie")
        .expect("rename");
    h.rename_department(dep_y, "Planning").expect("rename");
    let rows = env.step(&mut tr, &[], "renamed departments").await;
    assert_eq!(
        rows_of(&rows, x),
        vec![upd(Entity::Department, dep_x, &["name"])]
    );
    assert_eq!(
        rows_of(&rows, y),
        vec![upd(Entity::Department, dep_y, &["name"])]
    );

    // A sick report of a person with two concurrent employments: which employment it belongs to
    // is ambiguous, so `employment_id` stays empty.
    let p2c = nth_person(&world, x, 2);
    let concurrent = world.employees[&p2c].employment_ids.clone();
    assert_eq!(concurrent.len(), 2);
    let ac = h
        .create_absence(p2c, today - Days::new(4), None, None)
        .expect("new absence");
    let rows = env
        .step(&mut tr, &[], "absence of a person with two jobs")
        .await;
    assert_eq!(rows_of(&rows, x).len(), 2);
    let stored = env.db.table(Entity::Absence, x).await;
    assert_eq!(stored[&ac.to_string()].values["employment_id"], None);

    // An employment deleted at the source: nothing at the next incremental run; soft-deleted with
    // its periods at the next full reconciliation, where the absence now resolves to the other
    // employment.
    let gone = concurrent[1];
    let gone_periods: Vec<(Entity, Uuid)> = {
        let e = &world.employments[&gone];
        let mut v: Vec<(Entity, Uuid)> = e
            .organizational_entities
            .iter()
            .map(|o| (Entity::DepartmentPeriod, o.id))
            .collect();
        v.extend(
            e.working_hours
                .iter()
                .map(|w| (Entity::WorkweekPeriod, w.id)),
        );
        v.extend(e.wages.iter().map(|w| (Entity::SalaryPeriod, w.id)));
        v
    };
    h.delete_employment(gone).expect("deleted");
    let seq = env.db.max_seq().await;
    let doc = env.sync_ok(&[]).await;
    assert_eq!(outcome_of(&doc, x)["kind"], "incremental");
    assert!(
        env.db.journal(seq).await.is_empty(),
        "a deleted employment is only detected by a full reconciliation"
    );
    assert!(
        env.db.soft_deleted(Entity::Employment, x).await.is_empty(),
        "not soft-deleted before the full reconciliation"
    );
    let rows = env.step(&mut tr, &["--full"], "employment deleted").await;
    let mut want = vec![
        soft_del(Entity::Employment, gone),
        upd(Entity::Absence, ac, &["employment_id"]),
    ];
    want.extend(gone_periods.iter().map(|(e, id)| soft_del(*e, *id)));
    assert_eq!(rows_of(&rows, x), sorted(want));
    assert!(rows_of(&rows, y).is_empty());

    // Y (privacy-minimal): a first sick report brings an out-of-scope person in, with person,
    // employment and periods, at the next incremental run. No wages, no BSN are requested.
    let scope_y = tr[1].scope.clone().expect("Y is scoped");
    let world = h.truth();
    let (q1, q1e) = simple_person(&world, y, &scope_y.iter().copied().collect::<Vec<_>>());
    assert!(!scope_y.contains(&q1));
    h.reset_stats();
    let aq1 = h
        .create_absence(q1, today - Days::new(1), None, None)
        .expect("first sick report");
    let rows = env
        .step(&mut tr, &[], "first sick report brings a person in")
        .await;
    let ry = rows_of(&rows, y);
    assert!(ry.contains(&ins(Entity::Employee, q1)));
    assert!(ry.contains(&ins(Entity::Employment, q1e)));
    assert!(ry.contains(&ins(Entity::Absence, aq1)));
    assert_eq!(
        count(&ry, Entity::DepartmentPeriod, "insert"),
        world.employments[&q1e].organizational_entities.len()
    );
    assert_eq!(
        count(&ry, Entity::WorkweekPeriod, "insert"),
        world.employments[&q1e].working_hours.len()
    );
    assert_eq!(count(&ry, Entity::SalaryPeriod, "insert"), 0);
    assert_eq!(
        ry.len(),
        4 + count(&ry, Entity::DepartmentPeriod, "insert")
            + count(&ry, Entity::WorkweekPeriod, "insert")
    );
    assert!(
        !h.requests()
            .iter()
            .any(|r| r.path.ends_with("/wages") || r.path.ends_with("/citizenservicenumber")),
        "wages or a BSN were requested for a privacy-minimal employer"
    );

    // The same, in a run where the employer's own version number moved too (a renamed
    // department): the newcomer's employments must still be read.
    let mut skip: Vec<Uuid> = scope_y.iter().copied().collect();
    skip.push(q1);
    let (q2, q2e) = simple_person(&world, y, &skip);
    let dep_y2 = sim_employer(&world, y).departments[1].id;
    h.rename_department(dep_y2, "Expeditie Noord")
        .expect("rename");
    let aq2 = h
        .create_absence(q2, today, None, None)
        .expect("first sick report");
    let rows = env
        .step(&mut tr, &[], "first sick report while the employer changed")
        .await;
    let ry = rows_of(&rows, y);
    assert!(ry.contains(&upd(Entity::Department, dep_y2, &["name"])));
    assert!(ry.contains(&ins(Entity::Employee, q2)));
    assert!(ry.contains(&ins(Entity::Employment, q2e)));
    assert!(ry.contains(&ins(Entity::Absence, aq2)));

    // A dossier opened by hand (case_watch) pulls a person in at the next run.
    skip.push(q2);
    let (q3, q3e) = simple_person(&world, y, &skip);
    env.add_case_watch(y, i64::from(world.employees[&q3].employee_number))
        .await;
    let rows = env.step(&mut tr, &[], "case_watch").await;
    let ry = rows_of(&rows, y);
    assert!(ry.contains(&ins(Entity::Employee, q3)));
    assert!(ry.contains(&ins(Entity::Employment, q3e)));

    // Whatever the incremental runs did, a full reconciliation finds nothing left to do.
    let rows = env
        .step(&mut tr, &["--full"], "final full reconciliation")
        .await;
    assert!(rows.is_empty(), "the full run found more: {rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_on_sqlite() {
    scenarios(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_on_postgres() {
    scenarios(Backend::Postgres).await;
}
