//! Deterministic dataset generator: the same seed, sizes and "today" always give the
//! same [`World`] (ChaCha8 stream, no hash-map iteration, no wall clock).
//!
//! Every employer with at least ten employees is guaranteed to contain, at fixed
//! employee positions (0-based within the employer):
//! 1. a person with two sequential employments (the first terminated in the past),
//! 2. a person with two concurrent employments,
//! 3. a terminated employment (end date in the past),
//! 4. a future employment (start date after today),
//! 5. a fixed-term employment ending in the future,
//! 6. an absence with a partial-recovery chain 100% -> 50% -> closed,
//! 7. an open absence at 100%,
//! 8. an open, partially recovered absence (100% -> 50%),
//! 9. a maternity leave (cause key [`catalog::CAUSE_MATERNITY`], expected childbirth set).
//!
//! The rest is random: department changes, working-hours changes, yearly wage raises,
//! closed short absences, some with free-text comments.

use std::collections::{BTreeMap, HashSet};

use chrono::{Datelike, Days, NaiveDate};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

use crate::catalog;
use crate::model::{
    Absence, AbsenceProgress, Address, Department, Employee, Employer, Employment, EndOfAbsence,
    JobFunction, OrganizationalEntity, PayrollAdministration, Wage, WorkPattern, WorkingHours,
    World, relink,
};

/// First value of the global version counter: above 2^53 (beyond what a float holds exactly, so
/// any float on the path shows) and far above 2^32, so 64-bit handling is exercised.
pub const VERSION_COUNTER_START: i64 = (1_i64 << 60) + 70_429_273;

/// What the generator needs to know.
#[derive(Clone, Copy, Debug)]
pub struct GenParams {
    pub seed: u64,
    pub employers: usize,
    pub employees_per_employer: usize,
    pub today: NaiveDate,
}

/// Random source plus the version counter; also used after generation for runtime ids.
pub struct Gen {
    pub rng: ChaCha8Rng,
    pub today: NaiveDate,
}

/// Add (or subtract) days; saturates at the calendar limits instead of panicking.
pub fn add_days(d: NaiveDate, n: i64) -> NaiveDate {
    let r = if n >= 0 {
        d.checked_add_days(Days::new(n.unsigned_abs()))
    } else {
        d.checked_sub_days(Days::new(n.unsigned_abs()))
    };
    r.unwrap_or(d)
}

impl Gen {
    pub fn new(seed: u64, today: NaiveDate) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            today,
        }
    }

    pub fn id(&mut self) -> Uuid {
        uuid::Builder::from_random_bytes(self.rng.random()).into_uuid()
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        // All callers pass non-empty constant lists; an empty list is a programming error
        // caught by the generator tests.
        &items[self.rng.random_range(0..items.len())]
    }

    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            lo
        } else {
            self.rng.random_range(lo..=hi)
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    fn date_between(&mut self, lo: NaiveDate, hi: NaiveDate) -> NaiveDate {
        let span = (hi - lo).num_days();
        add_days(lo, self.range(0, span.max(0)))
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.rng.random_range(0..10u8)))
            .collect()
    }

    /// A 9-digit number passing the 11-proof (BSN / RSIN style).
    pub fn eleven_proof(&mut self) -> String {
        loop {
            let mut d: Vec<u32> = (0..8).map(|_| self.rng.random_range(0..10u32)).collect();
            if d[0] == 0 && d[1] == 0 {
                continue;
            }
            let s: u32 = d.iter().enumerate().map(|(i, v)| v * (9 - i as u32)).sum();
            let last = s % 11;
            if last == 10 {
                continue;
            }
            d.push(last);
            return d.iter().map(|v| char::from(b'0' + *v as u8)).collect();
        }
    }

    fn postal_code(&mut self) -> String {
        let n = self.range(1000, 9999);
        let letters = b"ABCEGHJKLMNPRTVWXZ";
        let a = letters[self.rng.random_range(0..letters.len())] as char;
        let b = letters[self.rng.random_range(0..letters.len())] as char;
        format!("{n} {a}{b}")
    }

    fn address(&mut self) -> Address {
        let addition = if self.chance(0.1) {
            Some((*self.pick(&["A", "B", "bis", "2"])).to_string())
        } else {
            None
        };
        Address {
            street: (*self.pick(catalog::STREETS)).to_string(),
            house_number: self.range(1, 250) as i32,
            house_number_addition: addition,
            postal_code: self.postal_code(),
            city: (*self.pick(catalog::CITIES)).to_string(),
        }
    }
}

/// Checks that `bsn` is 9 digits and passes the 11-proof.
pub fn is_valid_bsn(bsn: &str) -> bool {
    let b = bsn.as_bytes();
    if b.len() != 9 || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut s: i64 = 0;
    for (i, c) in b.iter().enumerate() {
        let v = i64::from(c - b'0');
        s += if i == 8 { -v } else { v * (9 - i as i64) };
    }
    s % 11 == 0
}

fn slug(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase()
}

/// The kind of employment history an employee gets.
#[derive(Clone, Copy, PartialEq)]
enum Plan {
    Normal,
    Sequential,
    Concurrent,
    Terminated,
    Future,
    EndsInFuture,
}

/// Generate the whole dataset. Returns the world and the generator, whose random stream
/// continues for ids created at run time.
pub fn generate(p: GenParams) -> (World, Gen) {
    let mut g = Gen::new(p.seed, p.today);
    let mut world = World {
        today: p.today,
        version_counter: VERSION_COUNTER_START,
        employers: Vec::with_capacity(p.employers),
        employees: BTreeMap::new(),
        employments: BTreeMap::new(),
        absences: BTreeMap::new(),
    };
    let mut used_names = HashSet::new();
    for i in 0..p.employers {
        let employer = gen_employer(&mut g, i, &mut used_names);
        world.employers.push(employer);
        let ei = world.employers.len() - 1;
        for j in 0..p.employees_per_employer {
            gen_employee(&mut g, &mut world, ei, j);
        }
        // Version numbers: each employment, then the employer, in generation order.
        let ids = world.employers[ei].employment_ids.clone();
        for id in ids {
            world.version_counter += 1;
            let v = world.version_counter;
            if let Some(e) = world.employments.get_mut(&id) {
                e.last_modified_version_number = v;
            }
        }
        world.version_counter += 1;
        world.employers[ei].last_modified_version_number = world.version_counter;
    }
    (world, g)
}

fn gen_employer(g: &mut Gen, i: usize, used: &mut HashSet<String>) -> Employer {
    let id = g.id();
    let mut name = format!(
        "{} {} B.V.",
        g.pick(catalog::COMPANY_FIRST),
        g.pick(catalog::COMPANY_SECOND)
    );
    if !used.insert(name.clone()) {
        name = format!("{} {} B.V.", name.trim_end_matches(" B.V."), i + 1);
        used.insert(name.clone());
    }
    let domain = format!("{}.nl", slug(name.trim_end_matches(" B.V.")));
    let period = *g.pick(&[1, 1, 1, 3, 4]);
    let start = NaiveDate::from_ymd_opt(g.today.year() - 15, 1, 1).unwrap_or(g.today);
    let admin = PayrollAdministration {
        id: g.id(),
        name: name.clone(),
        description: "Salarisadministratie".into(),
        client_number: 1000 + i as i32,
        payroll_taxes_number: format!("{}L01", g.eleven_proof()),
        payroll_period_type_key: period,
        start_date: start,
    };
    let mut tops: Vec<usize> = (0..catalog::DEPARTMENTS.len()).collect();
    tops.shuffle(&mut g.rng);
    let n_top = g.range(3, 5) as usize;
    tops.truncate(n_top);
    tops.sort_unstable();
    let mut departments = Vec::new();
    for (k, ti) in tops.iter().enumerate() {
        let (top_name, subs) = catalog::DEPARTMENTS[*ti];
        let top_code = (k as i32 + 1) * 100;
        let top_id = g.id();
        departments.push(Department {
            id: top_id,
            code: top_code,
            description: top_name.into(),
            parent_id: None,
        });
        for (m, sub) in subs.iter().enumerate() {
            departments.push(Department {
                id: g.id(),
                code: top_code + m as i32 + 1,
                description: (*sub).into(),
                parent_id: Some(top_id),
            });
        }
    }
    let functions = catalog::FUNCTIONS
        .iter()
        .map(|(d, grp)| JobFunction {
            id: g.id(),
            description: (*d).into(),
            group: grp.map(str::to_string),
        })
        .collect();
    Employer {
        id,
        employer_number: 20720 + i as i32,
        company_name: name,
        chamber_of_commerce_number: g.digits(8),
        address: g.address(),
        phone_number: format!("0{}-{}", g.range(10, 79), g.digits(7)),
        email_address: format!("info@{domain}"),
        website: format!("https://www.{domain}"),
        sbi_key: g.range(1, 40) as i32,
        payroll_administrations: vec![admin],
        departments,
        functions,
        employee_ids: Vec::new(),
        employment_ids: Vec::new(),
        next_employee_number: 1,
        next_payroll_id: 1,
        last_modified_version_number: 0,
    }
}

/// Details for a new person; shared by the generator and `/_sim` employee creation.
pub struct PersonSpec {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub female: Option<bool>,
}

pub fn new_employee(g: &mut Gen, employer: &mut Employer, spec: PersonSpec) -> Employee {
    let female = spec.female.unwrap_or_else(|| g.chance(0.5));
    let first = spec.first_name.unwrap_or_else(|| {
        let list = if female {
            catalog::FIRST_NAMES_FEMALE
        } else {
            catalog::FIRST_NAMES_MALE
        };
        (*g.pick(list)).to_string()
    });
    let (prefix, last) = match spec.last_name {
        Some(l) => (None, l),
        None if g.chance(0.3) => {
            let (p, l) = *g.pick(catalog::PREFIXED_LAST_NAMES);
            (Some(p.to_string()), l.to_string())
        }
        None => (None, (*g.pick(catalog::LAST_NAMES)).to_string()),
    };
    let first_initial = first
        .chars()
        .next()
        .map(|c| c.to_ascii_uppercase())
        .unwrap_or('X');
    let initials = if g.chance(0.3) {
        format!(
            "{first_initial}.{}.",
            *g.pick(&['A', 'C', 'H', 'J', 'M', 'P', 'W'])
        )
    } else {
        format!("{first_initial}.")
    };
    let age_days = g.range(18 * 365 + 5, 64 * 365);
    let dob = add_days(g.today, -age_days);
    let domain = *g.pick(&["example.nl", "example.com", "voorbeeldmail.nl"]);
    let email = format!(
        "{}.{}{}@{domain}",
        slug(&first),
        prefix.as_deref().map(slug).unwrap_or_default(),
        slug(&last)
    );
    let company_domain = format!(
        "{}.nl",
        slug(employer.company_name.trim_end_matches(" B.V."))
    );
    let business = g.chance(0.5);
    let number = employer.next_employee_number;
    employer.next_employee_number += 1;
    Employee {
        id: g.id(),
        employer_id: employer.id,
        employee_number: number,
        first_name: first.clone(),
        initials,
        prefix,
        last_name: last.clone(),
        date_of_birth: dob,
        gender_key: if female { 2 } else { 1 },
        place_of_birth: (*g.pick(catalog::CITIES)).to_string(),
        email_address: if g.chance(0.9) { Some(email) } else { None },
        phone_number: if g.chance(0.6) {
            Some(format!("0{}-{}", g.range(10, 79), g.digits(7)))
        } else {
            None
        },
        mobile_phone_number: Some(format!("06-{}", g.digits(8))),
        business_email_address: business
            .then(|| format!("{}.{}@{company_domain}", slug(&first), slug(&last))),
        business_phone_number: business.then(|| format!("0{}-{}", g.range(10, 79), g.digits(7))),
        address: g.address(),
        bsn: Some(g.eleven_proof()),
        employment_ids: Vec::new(),
        absence_ids: Vec::new(),
    }
}

fn gen_employee(g: &mut Gen, world: &mut World, ei: usize, j: usize) {
    let plan = match j {
        1 => Plan::Sequential,
        2 => Plan::Concurrent,
        3 => Plan::Terminated,
        4 => Plan::Future,
        5 => Plan::EndsInFuture,
        6..=9 => Plan::Normal,
        _ => {
            let r = g.range(0, 99);
            match r {
                0..=4 => Plan::Sequential,
                5..=8 => Plan::Concurrent,
                9..=17 => Plan::Terminated,
                18..=20 => Plan::Future,
                21..=24 => Plan::EndsInFuture,
                _ => Plan::Normal,
            }
        }
    };
    let female = if j == 9 { Some(true) } else { None };
    let employer = &mut world.employers[ei];
    let mut emp = new_employee(
        g,
        employer,
        PersonSpec {
            first_name: None,
            last_name: None,
            female,
        },
    );
    if j == 9 {
        // Maternity leave needs a plausible age.
        emp.date_of_birth = add_days(g.today, -g.range(24 * 365, 38 * 365));
    }
    let today = g.today;
    // Start no earlier than age 16 or 15 years ago, and early enough that every plan
    // (e.g. a terminated employment followed by a new one) fits before today.
    let earliest = std::cmp::max(
        add_days(emp.date_of_birth, 16 * 366),
        add_days(today, -15 * 365),
    )
    .min(add_days(today, -1000));
    let latest_past = add_days(today, -90);
    let mut spans: Vec<(NaiveDate, Option<NaiveDate>, Option<i32>)> = Vec::new();
    match plan {
        Plan::Normal => spans.push((g.date_between(earliest, latest_past), None, None)),
        Plan::Sequential => {
            let s1 = g.date_between(earliest, add_days(today, -800));
            let e1 = g.date_between(add_days(s1, 60), add_days(today, -400));
            let s2 = g.date_between(add_days(e1, 1), add_days(e1, 200));
            spans.push((s1, Some(e1), Some(2)));
            spans.push((s2, None, None));
        }
        Plan::Concurrent => {
            let s1 = g.date_between(earliest, add_days(today, -400));
            let s2 = g.date_between(add_days(s1, 30), latest_past);
            spans.push((s1, None, None));
            spans.push((s2, None, None));
        }
        Plan::Terminated => {
            let s = g.date_between(earliest, add_days(today, -400));
            let e = g.date_between(
                add_days(today, -700).max(add_days(s, 30)),
                add_days(today, -1),
            );
            spans.push((s, Some(e), Some(*g.pick(&[1, 2, 3]))));
        }
        Plan::Future => spans.push((add_days(today, g.range(1, 60)), None, None)),
        Plan::EndsInFuture => {
            let s = g.date_between(add_days(today, -700), latest_past);
            spans.push((s, Some(add_days(today, g.range(10, 180))), Some(2)));
        }
    }
    let employee_id = emp.id;
    for (k, (start, end, reason)) in spans.iter().enumerate() {
        let second_concurrent = plan == Plan::Concurrent && k == 1;
        let hist = if plan == Plan::Sequential && k == 1 {
            Some(spans[0].0)
        } else {
            None
        };
        let e = gen_employment(
            g,
            &world.employers[ei],
            employee_id,
            k as i32 + 1,
            *start,
            *end,
            *reason,
            second_concurrent,
            hist,
        );
        emp.employment_ids.push(e.id);
        world.employers[ei].employment_ids.push(e.id);
        world.employers[ei].next_payroll_id += 1;
        world.employments.insert(e.id, e);
    }
    // Absences happen during the (last) employment.
    let (emp_start, emp_end) = {
        let (s, e, _) = spans[spans.len() - 1];
        (s, e)
    };
    let mut absences = Vec::new();
    match j {
        6 => {
            let first = add_days(today, -g.range(40, 60));
            let mid = add_days(first, g.range(10, 15));
            let end = add_days(mid, g.range(10, 20));
            let mut a = make_absence(
                g,
                employee_id,
                1,
                &[(first, 100, None), (mid, 50, Some(2))],
                Some(end),
                true,
            );
            if a.comments.is_none() {
                a.comments = Some(catalog::ABSENCE_COMMENTS[1].to_string());
            }
            absences.push(a);
        }
        7 => {
            let first = add_days(today, -g.range(1, 20));
            absences.push(make_absence(
                g,
                employee_id,
                1,
                &[(first, 100, None)],
                None,
                true,
            ));
        }
        8 => {
            let first = add_days(today, -g.range(25, 45));
            let mid = add_days(first, 14);
            absences.push(make_absence(
                g,
                employee_id,
                1,
                &[(first, 100, None), (mid, 50, Some(2))],
                None,
                true,
            ));
        }
        9 => {
            let first = add_days(today, -g.range(0, 20));
            let mut a = make_absence(
                g,
                employee_id,
                catalog::CAUSE_MATERNITY,
                &[(first, 100, None)],
                None,
                false,
            );
            a.expected_date_of_childbirth = Some(add_days(first, 35));
            a.expected_end_date_of_maternity_leave = Some(add_days(first, 16 * 7 - 1));
            a.expected_duration_key = Some(4);
            a.is_recovered_within_two_weeks = false;
            absences.push(a);
        }
        _ => {
            // Some closed short absences within the employment, in the last two years.
            let lo = std::cmp::max(emp_start, add_days(today, -700));
            let hi = std::cmp::min(emp_end.unwrap_or(today), add_days(today, -20));
            if hi > add_days(lo, 30) && g.chance(0.25) {
                let n = g.range(1, 2);
                let mut cursor = lo;
                for _ in 0..n {
                    if add_days(cursor, 20) >= hi {
                        break;
                    }
                    let first = g.date_between(cursor, add_days(hi, -16));
                    let end = add_days(first, g.range(0, 13));
                    absences.push(make_absence(
                        g,
                        employee_id,
                        1,
                        &[(first, 100, None)],
                        Some(end),
                        true,
                    ));
                    cursor = add_days(end, 10);
                }
            }
        }
    }
    for a in absences {
        emp.absence_ids.push(a.id);
        world.absences.insert(a.id, a);
    }
    world.employers[ei].employee_ids.push(emp.id);
    world.employees.insert(emp.id, emp);
}

#[allow(clippy::too_many_arguments)]
fn gen_employment(
    g: &mut Gen,
    employer: &Employer,
    employee_id: Uuid,
    income_relationship_number: i32,
    start: NaiveDate,
    end: Option<NaiveDate>,
    end_reason: Option<i32>,
    part_time: bool,
    historical_start: Option<NaiveDate>,
) -> Employment {
    let today = g.today;
    let admin = &employer.payroll_administrations[0];
    let horizon = std::cmp::min(end.unwrap_or(today), today);
    // Change dates strictly after start, not after the horizon.
    let change_dates = |g: &mut Gen, max: usize| -> Vec<NaiveDate> {
        let mut v = Vec::new();
        let span = (horizon - start).num_days();
        if span > 60 {
            let n = g.range(0, max as i64) as usize;
            for _ in 0..n {
                v.push(add_days(start, g.range(30, span)));
            }
        }
        v.sort_unstable();
        v.dedup();
        v
    };
    let mut org = Vec::new();
    let leaf_or_any = &employer.departments;
    for d in std::iter::once(start).chain(change_dates(g, 2)) {
        let dep = g.pick(leaf_or_any).id;
        let fun = g.pick(&employer.functions).id;
        let place = if g.chance(0.7) {
            Some(employer.address.city.clone())
        } else {
            None
        };
        org.push(OrganizationalEntity {
            id: g.id(),
            start_date: d,
            end_date: None,
            department_id: dep,
            function_id: fun,
            place_of_employment: place,
        });
    }
    relink(&mut org, None);
    let full_time = *g.pick(&[40.0, 38.0, 36.0]);
    let mut wh = Vec::new();
    for d in std::iter::once(start).chain(change_dates(g, 1)) {
        let hours: f64 = if part_time {
            *g.pick(&[8.0, 12.0, 16.0])
        } else {
            *g.pick(&[full_time, full_time, 32.0, 24.0, 20.0, 16.0])
        };
        wh.push(working_hours_record(g, d, hours, full_time));
    }
    relink(&mut wh, None);
    let mut wages = Vec::new();
    if g.chance(0.95) {
        let hourly = g.chance(0.1);
        let mut cents: i64 = if hourly {
            g.range(1400, 3500)
        } else {
            g.range(220_000, 650_000)
        };
        let mut d = start;
        let mut dates = vec![start];
        loop {
            d = add_days(d, 365);
            if d > horizon {
                break;
            }
            dates.push(d);
        }
        let keep = dates.len().saturating_sub(3);
        for (k, d) in dates.into_iter().enumerate() {
            if k > 0 {
                cents += cents * g.range(15, 45) / 1000;
            }
            if k < keep {
                continue;
            }
            wages.push(Wage {
                id: g.id(),
                start_date: if k == keep { start.max(d) } else { d },
                end_date: None,
                gross_wage_cents: cents,
                gross_wage_type_key: if hourly { 2 } else { 1 },
                is_gross_wage_full_time: !hourly && g.chance(0.5),
                payroll_period_type_key: admin.payroll_period_type_key,
            });
        }
        // The first kept record starts at the employment start (no gap before it).
        if let Some(first) = wages.first_mut() {
            first.start_date = start;
        }
    }
    relink(&mut wages, None);
    let definite = end.is_some() || g.chance(0.3);
    Employment {
        id: g.id(),
        employer_id: employer.id,
        employee_id,
        payroll_administration_id: admin.id,
        payroll_id: employer.next_payroll_id,
        income_relationship_number,
        start_date: start,
        end_date: end,
        historical_start_date: historical_start,
        employment_duration_type_key: if definite { 2 } else { 1 },
        commission_until_date: if definite {
            Some(end.unwrap_or_else(|| add_days(start, 365 - 1)))
        } else {
            None
        },
        end_of_employment_reason_key: end_reason,
        organizational_entities: org,
        working_hours: wh,
        wages,
        last_modified_version_number: 0,
    }
}

/// A working-hours record for `hours` per week, with a plausible work pattern.
pub fn working_hours_record(
    g: &mut Gen,
    start: NaiveDate,
    hours: f64,
    full_time: f64,
) -> WorkingHours {
    let style = g.range(0, 9);
    let (pattern, deviating) = if style == 0 {
        (None, Some(hours.min(99.99)))
    } else if style <= 2 && hours >= 16.0 && hours < full_time {
        // Alternating weeks: odd weeks one day more than even weeks.
        let per_day = 8.0_f64;
        let odd_days = ((hours / per_day).ceil() as usize).min(5);
        let odd_total = per_day * odd_days as f64;
        let even_total = (2.0 * hours - odd_total).max(0.0);
        (
            Some(WorkPattern {
                odd_weeks: spread(odd_total),
                even_weeks: spread(even_total),
            }),
            None,
        )
    } else {
        (
            Some(WorkPattern {
                odd_weeks: spread(hours),
                even_weeks: spread(hours),
            }),
            None,
        )
    };
    let parttime = if g.chance(0.1) {
        Some(((hours / full_time) * 10000.0).round() / 100.0)
    } else {
        None
    };
    WorkingHours {
        id: g.id(),
        start_date: start,
        end_date: None,
        aggregated_hours_per_week: hours,
        shift_number: 1,
        full_time_hours_per_week: full_time,
        work_pattern: pattern,
        deviating_hours_per_week: deviating,
        average_parttime_factor: parttime,
        regular_work_pattern: style != 0,
    }
}

/// Spread weekly hours over Monday..Friday in whole days of at most 9 hours, then the rest.
pub fn spread(total: f64) -> [f64; 7] {
    let mut days = [0.0; 7];
    let mut left = (total * 100.0).round() / 100.0;
    let n = ((left / 8.0).ceil() as usize).clamp(1, 5);
    let per = ((left / n as f64) * 100.0).round() / 100.0;
    for d in days.iter_mut().take(n) {
        let h = per.min(left).min(24.0);
        *d = h;
        left = ((left - h) * 100.0).round() / 100.0;
    }
    if left > 0.0 {
        days[n - 1] = ((days[n - 1] + left) * 100.0).round() / 100.0;
    }
    days
}

/// Build an absence from its progress steps `(start, percentage, work resumption key)`.
pub fn make_absence(
    g: &mut Gen,
    employee_id: Uuid,
    cause: i32,
    steps: &[(NaiveDate, i32, Option<i32>)],
    end: Option<NaiveDate>,
    maybe_comment: bool,
) -> Absence {
    let mut progress: Vec<AbsenceProgress> = steps
        .iter()
        .map(|(d, pct, res)| AbsenceProgress {
            id: g.id(),
            start_date: *d,
            end_date: None,
            incapacity_percentage: *pct,
            type_of_work_resumption_key: *res,
            comments: None,
        })
        .collect();
    relink(&mut progress, end);
    let comments = if maybe_comment && g.chance(0.5) {
        Some((*g.pick(catalog::ABSENCE_COMMENTS)).to_string())
    } else {
        None
    };
    Absence {
        id: g.id(),
        employee_id,
        cause_of_absence_key: cause,
        expected_duration_key: if g.chance(0.8) {
            Some(g.range(1, 5) as i32)
        } else {
            None
        },
        is_recovered_within_two_weeks: g.chance(0.6),
        action_key: g.range(1, 4) as i32,
        is_work_related_illness: g.chance(0.05),
        is_disrupted_employment_relationship: g.chance(0.03),
        hours_worked_on_first_day: if g.chance(0.3) {
            Some(g.range(1, 8) as i32)
        } else {
            None
        },
        expected_date_of_childbirth: None,
        expected_end_date_of_maternity_leave: None,
        comments,
        end_of_absence: end.map(|date| EndOfAbsence {
            date,
            reason_key: 1,
        }),
        progress,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eleven_proof_numbers_validate() {
        let mut g = Gen::new(1, NaiveDate::from_ymd_opt(2025, 1, 1).unwrap());
        for _ in 0..1000 {
            let b = g.eleven_proof();
            assert!(is_valid_bsn(&b), "{b}");
        }
        assert!(is_valid_bsn("111222333"));
        assert!(!is_valid_bsn("111222334"));
    }

    #[test]
    fn spread_keeps_total() {
        for t in [8.0, 16.0, 24.0, 32.0, 36.0, 38.0, 40.0, 12.5, 0.0] {
            let s: f64 = spread(t).iter().sum();
            assert!((s - t).abs() < 0.001, "{t} -> {s}");
        }
    }
}
