//! The mutable dataset with its indexes, and every data mutation the `/_sim` API and
//! [`crate::SimHandle`] offer, including the last-modified version-number rules:
//!
//! * one global counter; every bump takes the next value;
//! * a change to an employment, its employee, or the employment's organizational
//!   entities, working hours or wages gives that employment AND its employer the new value;
//! * a department rename, a new employee or a deleted employment bumps the employer only
//!   (a new employee's new employment gets the same new value);
//! * absence and absence-progress changes bump nothing.

use std::collections::HashMap;

use chrono::NaiveDate;
use uuid::Uuid;

use crate::catalog;
use crate::generator::{self, Gen, PersonSpec, spread};
use crate::model::{
    Absence, AbsenceProgress, Employer, Employment, EndOfAbsence, OrganizationalEntity, Wage,
    WorkPattern, WorkingHours, World, active_on, relink,
};

/// Errors of data mutations (mapped to 404/400 by the `/_sim` routes).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SimError {
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: Uuid },
    #[error("invalid request: {0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> SimError {
    SimError::Invalid(msg.into())
}

/// A new employee created through `/_sim` (all fields optional).
#[derive(Default, Clone, serde::Deserialize)]
pub struct NewEmployee {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub start_date: Option<NaiveDate>,
}

/// Changes to an employee (used to plant canary values). For `bsn` and `email`, an
/// empty string clears the field.
#[derive(Default, Clone, serde::Deserialize)]
pub struct EmployeePatch {
    pub bsn: Option<String>,
    pub email: Option<String>,
    pub last_name: Option<String>,
}

/// The dataset plus lookup indexes and the id generator.
pub struct Store {
    pub world: World,
    gen_: Gen,
    employer_index: HashMap<Uuid, usize>,
    /// department id -> employer index
    department_index: HashMap<Uuid, usize>,
}

impl Store {
    pub fn new(world: World, gen_: Gen) -> Self {
        let mut s = Self {
            world,
            gen_,
            employer_index: HashMap::new(),
            department_index: HashMap::new(),
        };
        s.reindex();
        s
    }

    fn reindex(&mut self) {
        self.employer_index.clear();
        self.department_index.clear();
        for (i, e) in self.world.employers.iter().enumerate() {
            self.employer_index.insert(e.id, i);
            for d in &e.departments {
                self.department_index.insert(d.id, i);
            }
        }
    }

    pub fn employer(&self, id: Uuid) -> Option<&Employer> {
        self.employer_index
            .get(&id)
            .and_then(|i| self.world.employers.get(*i))
    }

    fn employer_mut(&mut self, id: Uuid) -> Result<&mut Employer, SimError> {
        match self.employer_index.get(&id) {
            Some(i) => self.world.employers.get_mut(*i).ok_or(SimError::NotFound {
                kind: "employer",
                id,
            }),
            None => Err(SimError::NotFound {
                kind: "employer",
                id,
            }),
        }
    }

    /// The employer owning a department, and the department's index in its list.
    pub fn department_owner(&self, id: Uuid) -> Option<(&Employer, usize)> {
        let e = self.world.employers.get(*self.department_index.get(&id)?)?;
        let di = e.departments.iter().position(|d| d.id == id)?;
        Some((e, di))
    }

    fn next_version(&mut self) -> i64 {
        self.world.version_counter += 1;
        self.world.version_counter
    }

    fn bump_employment(&mut self, employment_id: Uuid) {
        let v = self.next_version();
        let Some(e) = self.world.employments.get_mut(&employment_id) else {
            return;
        };
        e.last_modified_version_number = v;
        let employer_id = e.employer_id;
        if let Ok(er) = self.employer_mut(employer_id) {
            er.last_modified_version_number = v;
        }
    }

    fn bump_employer_only(&mut self, employer_id: Uuid) -> Result<i64, SimError> {
        let v = self.next_version();
        self.employer_mut(employer_id)?.last_modified_version_number = v;
        Ok(v)
    }

    fn employment_mut(&mut self, id: Uuid) -> Result<&mut Employment, SimError> {
        self.world
            .employments
            .get_mut(&id)
            .ok_or(SimError::NotFound {
                kind: "employment",
                id,
            })
    }

    fn absence_mut(&mut self, id: Uuid) -> Result<&mut Absence, SimError> {
        self.world.absences.get_mut(&id).ok_or(SimError::NotFound {
            kind: "absence",
            id,
        })
    }

    // ----- absences (no version bumps) -----

    pub fn create_absence(
        &mut self,
        employee_id: Uuid,
        first_day: NaiveDate,
        cause_key: Option<i32>,
        comments: Option<String>,
    ) -> Result<Uuid, SimError> {
        if !self.world.employees.contains_key(&employee_id) {
            return Err(SimError::NotFound {
                kind: "employee",
                id: employee_id,
            });
        }
        let cause = cause_key.unwrap_or(1);
        if !catalog::has_key(catalog::CAUSE_OF_ABSENCE, cause) {
            return Err(invalid(format!("unknown cause_key {cause}")));
        }
        if comments.as_ref().is_some_and(|c| c.chars().count() > 4000) {
            return Err(invalid("comments longer than 4000 characters"));
        }
        let id = self.gen_.id();
        let progress_id = self.gen_.id();
        let absence = Absence {
            id,
            employee_id,
            cause_of_absence_key: cause,
            expected_duration_key: None,
            is_recovered_within_two_weeks: false,
            action_key: 1,
            is_work_related_illness: false,
            is_disrupted_employment_relationship: false,
            hours_worked_on_first_day: None,
            expected_date_of_childbirth: None,
            expected_end_date_of_maternity_leave: None,
            comments,
            end_of_absence: None,
            progress: vec![AbsenceProgress {
                id: progress_id,
                start_date: first_day,
                end_date: None,
                incapacity_percentage: 100,
                type_of_work_resumption_key: None,
                comments: None,
            }],
        };
        self.world.absences.insert(id, absence);
        if let Some(e) = self.world.employees.get_mut(&employee_id) {
            e.absence_ids.push(id);
        }
        Ok(id)
    }

    /// Partial recovery: a new progress record from `start_date` (closing the previous one
    /// at `start_date - 1`). A record with the same start date is replaced.
    pub fn add_absence_progress(
        &mut self,
        absence_id: Uuid,
        start_date: NaiveDate,
        pct: i32,
    ) -> Result<Uuid, SimError> {
        if !(1..=100).contains(&pct) {
            return Err(invalid("incapacity_percentage must be 1..=100"));
        }
        let id = self.gen_.id();
        let a = self.absence_mut(absence_id)?;
        let first = a
            .first_day()
            .ok_or_else(|| invalid("absence without progress"))?;
        if start_date <= first {
            return Err(invalid("start_date must be after the first day of absence"));
        }
        if a.last_day().is_some_and(|end| start_date > end) {
            return Err(invalid("start_date is after the end of the absence"));
        }
        let end = a.last_day();
        if let Some(existing) = a.progress.iter_mut().find(|p| p.start_date == start_date) {
            existing.incapacity_percentage = pct;
            let eid = existing.id;
            relink(&mut a.progress, end);
            return Ok(eid);
        }
        a.progress.push(AbsenceProgress {
            id,
            start_date,
            end_date: None,
            incapacity_percentage: pct,
            type_of_work_resumption_key: if pct < 100 { Some(2) } else { None },
            comments: None,
        });
        relink(&mut a.progress, end);
        Ok(id)
    }

    /// Full recovery: `date` is the last day of absence.
    pub fn close_absence(
        &mut self,
        absence_id: Uuid,
        date: NaiveDate,
        reason_key: Option<i32>,
    ) -> Result<(), SimError> {
        let reason = reason_key.unwrap_or(1);
        if !catalog::has_key(catalog::END_OF_ABSENCE_REASON, reason) {
            return Err(invalid(format!("unknown reason_key {reason}")));
        }
        let a = self.absence_mut(absence_id)?;
        if a.progress.iter().any(|p| p.start_date > date) {
            return Err(invalid("a progress record starts after the end date"));
        }
        a.end_of_absence = Some(EndOfAbsence {
            date,
            reason_key: reason,
        });
        relink(&mut a.progress, Some(date));
        Ok(())
    }

    /// Correct the first day of absence (moves the first progress record's start).
    pub fn correct_absence_first_day(
        &mut self,
        absence_id: Uuid,
        first_day: NaiveDate,
    ) -> Result<(), SimError> {
        let a = self.absence_mut(absence_id)?;
        if a.progress.get(1).is_some_and(|p| first_day >= p.start_date) {
            return Err(invalid(
                "first_day must be before the second progress record",
            ));
        }
        if a.last_day().is_some_and(|end| first_day > end) {
            return Err(invalid("first_day is after the end of the absence"));
        }
        let end = a.last_day();
        if let Some(p) = a.progress.first_mut() {
            p.start_date = first_day;
        }
        relink(&mut a.progress, end);
        Ok(())
    }

    pub fn delete_absence(&mut self, absence_id: Uuid) -> Result<(), SimError> {
        let a = self
            .world
            .absences
            .remove(&absence_id)
            .ok_or(SimError::NotFound {
                kind: "absence",
                id: absence_id,
            })?;
        if let Some(e) = self.world.employees.get_mut(&a.employee_id) {
            e.absence_ids.retain(|x| *x != absence_id);
        }
        Ok(())
    }

    // ----- employment data (bumps employment + employer) -----

    fn check_in_employment(e: &Employment, date: NaiveDate) -> Result<(), SimError> {
        if date < e.start_date || e.end_date.is_some_and(|end| date > end) {
            return Err(invalid("start_date is outside the employment"));
        }
        Ok(())
    }

    pub fn add_working_hours(
        &mut self,
        employment_id: Uuid,
        start_date: NaiveDate,
        hours_per_week: f64,
    ) -> Result<Uuid, SimError> {
        if !(hours_per_week > 0.0 && hours_per_week <= 99.99) {
            return Err(invalid("hours_per_week must be in (0, 99.99]"));
        }
        let hours = (hours_per_week * 100.0).round() / 100.0;
        let id = self.gen_.id();
        let e = self.employment_mut(employment_id)?;
        Self::check_in_employment(e, start_date)?;
        let full_time = active_on(&e.working_hours, start_date)
            .or(e.working_hours.last())
            .map(|w| w.full_time_hours_per_week)
            .unwrap_or(40.0);
        let rec = WorkingHours {
            id,
            start_date,
            end_date: None,
            aggregated_hours_per_week: hours,
            shift_number: 1,
            full_time_hours_per_week: full_time,
            work_pattern: Some(WorkPattern {
                odd_weeks: spread(hours),
                even_weeks: spread(hours),
            }),
            deviating_hours_per_week: None,
            average_parttime_factor: None,
            regular_work_pattern: true,
        };
        let id = upsert(&mut e.working_hours, rec);
        relink(&mut e.working_hours, None);
        self.bump_employment(employment_id);
        Ok(id)
    }

    pub fn change_department(
        &mut self,
        employment_id: Uuid,
        start_date: NaiveDate,
        department_id: Uuid,
    ) -> Result<Uuid, SimError> {
        let employer_id = self
            .world
            .employments
            .get(&employment_id)
            .map(|e| e.employer_id);
        let Some(employer_id) = employer_id else {
            return Err(SimError::NotFound {
                kind: "employment",
                id: employment_id,
            });
        };
        let (owner, _) = self
            .department_owner(department_id)
            .ok_or(SimError::NotFound {
                kind: "department",
                id: department_id,
            })?;
        if owner.id != employer_id {
            return Err(invalid("department belongs to another employer"));
        }
        let fallback_function = owner.functions.first().map(|f| f.id).unwrap_or_default();
        let id = self.gen_.id();
        let e = self.employment_mut(employment_id)?;
        Self::check_in_employment(e, start_date)?;
        let prev =
            active_on(&e.organizational_entities, start_date).or(e.organizational_entities.last());
        let rec = OrganizationalEntity {
            id,
            start_date,
            end_date: None,
            department_id,
            function_id: prev.map(|p| p.function_id).unwrap_or(fallback_function),
            place_of_employment: prev.and_then(|p| p.place_of_employment.clone()),
        };
        let id = upsert(&mut e.organizational_entities, rec);
        relink(&mut e.organizational_entities, None);
        self.bump_employment(employment_id);
        Ok(id)
    }

    pub fn change_wage(
        &mut self,
        employment_id: Uuid,
        start_date: NaiveDate,
        gross_wage: f64,
    ) -> Result<Uuid, SimError> {
        if !(0.01..=999_999.99).contains(&gross_wage) {
            return Err(invalid("gross_wage must be in [0.01, 999999.99]"));
        }
        let cents = (gross_wage * 100.0).round() as i64;
        let id = self.gen_.id();
        let period_default = {
            let e = self
                .world
                .employments
                .get(&employment_id)
                .ok_or(SimError::NotFound {
                    kind: "employment",
                    id: employment_id,
                })?;
            self.employer(e.employer_id)
                .and_then(|er| {
                    er.payroll_administrations
                        .iter()
                        .find(|a| a.id == e.payroll_administration_id)
                })
                .map(|a| a.payroll_period_type_key)
                .unwrap_or(1)
        };
        let e = self.employment_mut(employment_id)?;
        Self::check_in_employment(e, start_date)?;
        let prev = active_on(&e.wages, start_date).or(e.wages.last());
        let rec = Wage {
            id,
            start_date,
            end_date: None,
            gross_wage_cents: cents,
            gross_wage_type_key: prev.map(|p| p.gross_wage_type_key).unwrap_or(1),
            is_gross_wage_full_time: prev.map(|p| p.is_gross_wage_full_time).unwrap_or(false),
            payroll_period_type_key: prev
                .map(|p| p.payroll_period_type_key)
                .unwrap_or(period_default),
        };
        let id = upsert(&mut e.wages, rec);
        relink(&mut e.wages, None);
        self.bump_employment(employment_id);
        Ok(id)
    }

    pub fn terminate_employment(
        &mut self,
        employment_id: Uuid,
        end_date: NaiveDate,
    ) -> Result<(), SimError> {
        let e = self.employment_mut(employment_id)?;
        if end_date < e.start_date {
            return Err(invalid("end_date is before the start of the employment"));
        }
        e.end_date = Some(end_date);
        e.end_of_employment_reason_key = Some(1);
        self.bump_employment(employment_id);
        Ok(())
    }

    pub fn delete_employment(&mut self, employment_id: Uuid) -> Result<(), SimError> {
        let e = self
            .world
            .employments
            .remove(&employment_id)
            .ok_or(SimError::NotFound {
                kind: "employment",
                id: employment_id,
            })?;
        if let Some(emp) = self.world.employees.get_mut(&e.employee_id) {
            emp.employment_ids.retain(|x| *x != employment_id);
        }
        self.employer_mut(e.employer_id)?
            .employment_ids
            .retain(|x| *x != employment_id);
        self.bump_employer_only(e.employer_id)?;
        Ok(())
    }

    // ----- employees, departments, explicit bumps -----

    pub fn add_employee(
        &mut self,
        employer_id: Uuid,
        spec: NewEmployee,
    ) -> Result<(Uuid, Uuid), SimError> {
        let today = self.world.today;
        let start = spec.start_date.unwrap_or(today);
        let ei = *self
            .employer_index
            .get(&employer_id)
            .ok_or(SimError::NotFound {
                kind: "employer",
                id: employer_id,
            })?;
        if spec
            .first_name
            .as_ref()
            .is_some_and(|n| n.is_empty() || n.chars().count() > 28)
            || spec
                .last_name
                .as_ref()
                .is_some_and(|n| n.is_empty() || n.chars().count() > 25)
        {
            return Err(invalid(
                "first_name must be 1..=28 and last_name 1..=25 characters",
            ));
        }
        let Some(employer) = self.world.employers.get_mut(ei) else {
            return Err(SimError::NotFound {
                kind: "employer",
                id: employer_id,
            });
        };
        let mut emp = generator::new_employee(
            &mut self.gen_,
            employer,
            PersonSpec {
                first_name: spec.first_name,
                last_name: spec.last_name,
                female: None,
            },
        );
        let (Some(admin), Some(dep), Some(fun)) = (
            employer.payroll_administrations.first(),
            employer.departments.first(),
            employer.functions.first(),
        ) else {
            return Err(invalid(
                "employer has no payroll administration, department or function",
            ));
        };
        let (admin_id, period, dep_id, fun_id) =
            (admin.id, admin.payroll_period_type_key, dep.id, fun.id);
        let payroll_id = employer.next_payroll_id;
        employer.next_payroll_id += 1;
        let mut wh = generator::working_hours_record(&mut self.gen_, start, 40.0, 40.0);
        wh.average_parttime_factor = None;
        let employment = Employment {
            id: self.gen_.id(),
            employer_id,
            employee_id: emp.id,
            payroll_administration_id: admin_id,
            payroll_id,
            income_relationship_number: 1,
            start_date: start,
            end_date: None,
            historical_start_date: None,
            employment_duration_type_key: 1,
            commission_until_date: None,
            end_of_employment_reason_key: None,
            organizational_entities: vec![OrganizationalEntity {
                id: self.gen_.id(),
                start_date: start,
                end_date: None,
                department_id: dep_id,
                function_id: fun_id,
                place_of_employment: None,
            }],
            working_hours: vec![wh],
            wages: vec![Wage {
                id: self.gen_.id(),
                start_date: start,
                end_date: None,
                gross_wage_cents: 300_000,
                gross_wage_type_key: 1,
                is_gross_wage_full_time: true,
                payroll_period_type_key: period,
            }],
            last_modified_version_number: 0,
        };
        let (employee_id, employment_id) = (emp.id, employment.id);
        emp.employment_ids.push(employment_id);
        if let Some(employer) = self.world.employers.get_mut(ei) {
            employer.employee_ids.push(employee_id);
            employer.employment_ids.push(employment_id);
        }
        self.world.employees.insert(employee_id, emp);
        self.world.employments.insert(employment_id, employment);
        self.bump_employment(employment_id);
        Ok((employee_id, employment_id))
    }

    pub fn patch_employee(
        &mut self,
        employee_id: Uuid,
        patch: EmployeePatch,
    ) -> Result<(), SimError> {
        if let Some(b) = &patch.bsn
            && !b.is_empty()
            && !(b.len() == 9 && b.bytes().all(|c| c.is_ascii_digit()))
        {
            return Err(invalid("bsn must be 9 digits (or empty to clear)"));
        }
        if patch
            .last_name
            .as_ref()
            .is_some_and(|n| n.is_empty() || n.chars().count() > 25)
        {
            return Err(invalid("last_name must be 1..=25 characters"));
        }
        let emp = self
            .world
            .employees
            .get_mut(&employee_id)
            .ok_or(SimError::NotFound {
                kind: "employee",
                id: employee_id,
            })?;
        if let Some(b) = patch.bsn {
            emp.bsn = if b.is_empty() { None } else { Some(b) };
        }
        if let Some(m) = patch.email {
            emp.email_address = if m.is_empty() { None } else { Some(m) };
        }
        if let Some(l) = patch.last_name {
            emp.last_name = l;
        }
        let employments = emp.employment_ids.clone();
        let employer_id = emp.employer_id;
        if employments.is_empty() {
            self.bump_employer_only(employer_id)?;
        }
        for id in employments {
            self.bump_employment(id);
        }
        Ok(())
    }

    pub fn rename_department(
        &mut self,
        department_id: Uuid,
        description: String,
    ) -> Result<(), SimError> {
        if description.is_empty() || description.chars().count() > 50 {
            return Err(invalid("description must be 1..=50 characters"));
        }
        let ei = *self
            .department_index
            .get(&department_id)
            .ok_or(SimError::NotFound {
                kind: "department",
                id: department_id,
            })?;
        let employer = self.world.employers.get_mut(ei).ok_or(SimError::NotFound {
            kind: "department",
            id: department_id,
        })?;
        let employer_id = employer.id;
        let d = employer
            .departments
            .iter_mut()
            .find(|d| d.id == department_id)
            .ok_or(SimError::NotFound {
                kind: "department",
                id: department_id,
            })?;
        d.description = description;
        self.bump_employer_only(employer_id)?;
        Ok(())
    }

    /// Bump version numbers without a data change: the given employments (and the
    /// employer), or when `employment_ids` is `None`, every employment of the employer.
    /// Returns the employer's new version number.
    pub fn bump(
        &mut self,
        employer_id: Uuid,
        employment_ids: Option<Vec<Uuid>>,
    ) -> Result<i64, SimError> {
        let all = self
            .employer(employer_id)
            .ok_or(SimError::NotFound {
                kind: "employer",
                id: employer_id,
            })?
            .employment_ids
            .clone();
        let ids = employment_ids.unwrap_or(all.clone());
        for id in &ids {
            if !all.contains(id) {
                return Err(SimError::NotFound {
                    kind: "employment",
                    id: *id,
                });
            }
        }
        for id in ids {
            self.bump_employment(id);
        }
        self.bump_employer_only(employer_id)
    }

    /// Absences of an employee whose period overlaps `[from, to]`.
    pub fn absences_overlapping(
        &self,
        employee_id: Uuid,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Vec<&Absence> {
        let Some(emp) = self.world.employees.get(&employee_id) else {
            return Vec::new();
        };
        emp.absence_ids
            .iter()
            .filter_map(|id| self.world.absences.get(id))
            .filter(|a| {
                a.first_day().is_some_and(|f| f <= to) && a.last_day().is_none_or(|l| l >= from)
            })
            .collect()
    }

    pub fn today(&self) -> NaiveDate {
        self.world.today
    }
}

/// Insert a record into a chain, replacing one with the same start date (keeping its id).
fn upsert<T: crate::model::Period + HasId>(chain: &mut Vec<T>, mut rec: T) -> Uuid {
    if let Some(pos) = chain.iter().position(|p| p.start() == rec.start()) {
        rec.set_id(chain[pos].id());
        let id = rec.id();
        chain[pos] = rec;
        id
    } else {
        let id = rec.id();
        chain.push(rec);
        id
    }
}

trait HasId {
    fn id(&self) -> Uuid;
    fn set_id(&mut self, id: Uuid);
}

macro_rules! impl_has_id {
    ($($t:ty),*) => {$(
        impl HasId for $t {
            fn id(&self) -> Uuid { self.id }
            fn set_id(&mut self, id: Uuid) { self.id = id; }
        }
    )*};
}
impl_has_id!(OrganizationalEntity, WorkingHours, Wage);
