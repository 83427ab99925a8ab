//! The one place where Loket wire models become normalized records.
//!
//! Privacy is applied here, before anything is hashed or stored: the BSN only enters an employee
//! record when the caller passes it (the `bsn` option decides whether it is fetched at all), and
//! absence free text never reaches a record because the wire model does not even keep it.
//! A record that lacks a field the contract needs (an employment without a start date, say) is a
//! [`MapError`]: the caller sends it to the retry queue instead of guessing.

use std::collections::HashMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::loket::models as wire;
use crate::records::{
    Absence, AbsenceProgress, Department, DepartmentPeriod, Employee, Employer, Employment,
    PayrollPeriod, SalaryPeriod, WageType, WorkweekPeriod,
};

/// A record the contract cannot represent. Carries ids only, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entity} {id}: {problem}")]
pub struct MapError {
    pub entity: &'static str,
    pub id: String,
    pub problem: &'static str,
}

fn missing(entity: &'static str, id: &str, problem: &'static str) -> MapError {
    MapError {
        entity,
        id: id.to_string(),
        problem,
    }
}

fn meta_value(m: &Option<wire::Metadata>) -> Option<String> {
    m.as_ref().and_then(|m| m.value.clone())
}

fn meta_key(m: &Option<wire::Metadata>) -> Option<i64> {
    m.as_ref().and_then(|m| m.key)
}

pub fn employer(e: &wire::Employer, fallback_name: &str) -> Employer {
    Employer {
        id: e.id.clone(),
        source: "loket".to_string(),
        employer_number: e.employer_number,
        name: e
            .company_name
            .clone()
            .unwrap_or_else(|| fallback_name.to_string()),
        chamber_of_commerce_number: e.chamber_of_commerce_number.clone(),
    }
}

pub fn department(employer_id: &str, d: &wire::Department) -> Department {
    Department {
        id: d.id.clone(),
        employer_id: employer_id.to_string(),
        code: d.code,
        name: d.description.clone(),
        parent_id: d.sub_department_of.as_ref().and_then(|p| p.key.clone()),
    }
}

/// `bsn` is `Some` only when the employer's `bsn` option is on and it was fetched.
pub fn employee(
    employer_id: &str,
    e: &wire::Employee,
    bsn: Option<String>,
) -> Result<Employee, MapError> {
    let number = e
        .employee_number
        .ok_or_else(|| missing("employee", &e.id, "has no employeeNumber"))?;
    let pd = e.personal_details.as_ref();
    let ci = e.contact_information.as_ref();
    let addr = e.address.as_ref();
    Ok(Employee {
        id: e.id.clone(),
        employer_id: employer_id.to_string(),
        employee_number: number,
        initials: pd.and_then(|p| p.initials.clone()),
        first_name: pd.and_then(|p| p.first_name.clone()),
        prefix: pd.and_then(|p| p.prefix.clone()),
        last_name: pd.and_then(|p| p.last_name.clone()),
        formatted_name: pd.and_then(|p| p.formatted_name.clone()),
        date_of_birth: pd.and_then(|p| p.date_of_birth),
        gender: pd.and_then(|p| meta_value(&p.gender)),
        gender_code: pd.and_then(|p| meta_key(&p.gender)),
        email: ci.and_then(|c| {
            c.email_address
                .clone()
                .or_else(|| c.business_email_address.clone())
        }),
        phone: ci.and_then(|c| {
            c.phone_number
                .clone()
                .or_else(|| c.business_phone_number.clone())
        }),
        mobile_phone: ci.and_then(|c| {
            c.mobile_phone_number
                .clone()
                .or_else(|| c.business_mobile_phone_number.clone())
        }),
        street: addr.and_then(|a| a.street.clone()),
        house_number: addr.and_then(|a| a.house_number),
        house_number_addition: addr.and_then(|a| a.house_number_addition.clone()),
        postal_code: addr.and_then(|a| a.postal_code.clone()),
        city: addr.and_then(|a| a.city.clone()),
        country_code: addr
            .and_then(|a| a.country.as_ref())
            .and_then(|c| c.iso_code.clone()),
        bsn,
    })
}

/// `payroll_tax_numbers` maps a payroll administration id to its loonheffingennummer.
pub fn employment(
    employer_id: &str,
    e: &wire::Employment,
    payroll_tax_numbers: &HashMap<String, String>,
) -> Result<Employment, MapError> {
    let employee_id = e
        .employee
        .as_ref()
        .and_then(|r| r.id.clone())
        .ok_or_else(|| missing("employment", &e.id, "has no employee id"))?;
    let start_date = e
        .start_date
        .ok_or_else(|| missing("employment", &e.id, "has no startDate"))?;
    Ok(Employment {
        id: e.id.clone(),
        employer_id: employer_id.to_string(),
        employee_id,
        start_date,
        end_date: e.end_date,
        planned_end_date: e.commission_until_date,
        contract_type: meta_value(&e.employment_duration_type),
        contract_type_code: meta_key(&e.employment_duration_type),
        payroll_tax_number: e
            .payroll_administration
            .as_ref()
            .and_then(|a| a.id.as_ref())
            .and_then(|id| payroll_tax_numbers.get(id).cloned()),
    })
}

pub fn department_period(
    employer_id: &str,
    employment_id: &str,
    o: &wire::OrganizationalEntity,
) -> Result<DepartmentPeriod, MapError> {
    let start_date = o
        .start_date
        .ok_or_else(|| missing("employment_department_period", &o.id, "has no startDate"))?;
    let function_name = o
        .deviating_function_description
        .clone()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| o.function.as_ref().and_then(|f| f.description.clone()));
    Ok(DepartmentPeriod {
        id: o.id.clone(),
        employer_id: employer_id.to_string(),
        employment_id: employment_id.to_string(),
        department_id: o.department.as_ref().and_then(|d| d.key.clone()),
        function_name,
        start_date,
        end_date: o.end_date,
    })
}

fn week_days(w: &wire::WeekHours) -> [(&'static str, Decimal); 7] {
    let h = |v: Option<Decimal>| v.unwrap_or(Decimal::ZERO);
    [
        ("monday", h(w.monday)),
        ("tuesday", h(w.tuesday)),
        ("wednesday", h(w.wednesday)),
        ("thursday", h(w.thursday)),
        ("friday", h(w.friday)),
        ("saturday", h(w.saturday)),
        ("sunday", h(w.sunday)),
    ]
}

/// Days with hours above zero, averaged over the odd and even week (e.g. 4.5).
fn days_per_week(p: &wire::WorkPattern) -> Option<Decimal> {
    let odd = p.odd_weeks.as_ref()?;
    let even = p.even_weeks.as_ref().unwrap_or(odd);
    let count = |w: &wire::WeekHours| {
        week_days(w)
            .iter()
            .filter(|(_, h)| *h > Decimal::ZERO)
            .count() as i64
    };
    Some((Decimal::from(count(odd) + count(even)) / Decimal::from(2)).normalize())
}

/// The pattern as canonical JSON text: `{"odd":{"monday":8,...},"even":{...}}`.
fn work_pattern_json(p: &wire::WorkPattern) -> Option<String> {
    let odd = p.odd_weeks.as_ref()?;
    let even = p.even_weeks.as_ref().unwrap_or(odd);
    let week = |w: &wire::WeekHours| {
        let days: Vec<String> = week_days(w)
            .iter()
            .map(|(d, h)| format!("\"{d}\":{}", h.normalize()))
            .collect();
        format!("{{{}}}", days.join(","))
    };
    Some(format!("{{\"odd\":{},\"even\":{}}}", week(odd), week(even)))
}

pub fn workweek_period(
    employer_id: &str,
    employment_id: &str,
    w: &wire::WorkingHours,
) -> Result<WorkweekPeriod, MapError> {
    let start_date = w
        .start_date
        .ok_or_else(|| missing("employment_workweek_period", &w.id, "has no startDate"))?;
    let hours = w.aggregated_hours_per_week;
    let full_time = w.shift.as_ref().and_then(|s| s.full_time_hours_per_week);
    let parttime_percentage = match (w.average_parttime_factor, hours, full_time) {
        (Some(f), _, _) => Some(f.round_dp(2)),
        (None, Some(h), Some(ft)) if ft > Decimal::ZERO => {
            Some((h / ft * Decimal::from(100)).round_dp(2))
        }
        _ => None,
    };
    let pattern = w.work_pattern.as_ref();
    Ok(WorkweekPeriod {
        id: w.id.clone(),
        employer_id: employer_id.to_string(),
        employment_id: employment_id.to_string(),
        start_date,
        end_date: w.end_date,
        hours_per_week: hours,
        days_per_week: pattern.and_then(days_per_week),
        parttime_percentage,
        work_pattern: pattern.and_then(work_pattern_json),
    })
}

/// Only called when the employer's `salary` option is on.
pub fn salary_period(
    employer_id: &str,
    employment_id: &str,
    w: &wire::Wage,
) -> Result<SalaryPeriod, MapError> {
    let start_date = w
        .start_date
        .ok_or_else(|| missing("employment_salary_period", &w.id, "has no startDate"))?;
    // Loket: grossWageType key 1 is a periodic wage, otherwise hourly; payrollPeriodType key 1
    // month, 3 four weeks, 4 week.
    let wage_type = meta_key(&w.gross_wage_type).map(|k| {
        if k == 1 {
            WageType::Period
        } else {
            WageType::Hourly
        }
    });
    let payroll_period = match meta_key(&w.payroll_period_type) {
        Some(1) => Some(PayrollPeriod::Month),
        Some(3) => Some(PayrollPeriod::FourWeeks),
        Some(4) => Some(PayrollPeriod::Week),
        _ => None,
    };
    Ok(SalaryPeriod {
        id: w.id.clone(),
        employer_id: employer_id.to_string(),
        employment_id: employment_id.to_string(),
        start_date,
        end_date: w.end_date,
        gross_wage: w.gross_wage.map(|g| g.round_dp(2)),
        wage_type,
        payroll_period,
        is_full_time_amount: w.is_gross_wage_full_time,
    })
}

/// The first day of absence: the earliest start among the progress records and the absence's own
/// `progress.startDate`.
pub fn first_day(a: &wire::Absence, progress: &[wire::AbsenceProgress]) -> Option<NaiveDate> {
    progress
        .iter()
        .filter_map(|p| p.start_date)
        .chain(a.progress.as_ref().and_then(|p| p.start_date))
        .min()
}

/// Whether an absence is inside the history window: open, or ended on or after `window_start`.
pub fn in_history_window(last_day: Option<NaiveDate>, window_start: NaiveDate) -> bool {
    last_day.is_none_or(|d| d >= window_start)
}

/// Picks the employment an absence belongs to: the one employment of the person that covers the
/// first day. Several (or none) means ambiguous: `None`.
pub fn resolve_employment<'a>(
    first_day: NaiveDate,
    employments: impl IntoIterator<Item = (&'a str, NaiveDate, Option<NaiveDate>)>,
) -> Option<String> {
    let mut covering = employments
        .into_iter()
        .filter(|(_, start, end)| *start <= first_day && end.is_none_or(|e| e >= first_day));
    let first = covering.next()?;
    if covering.next().is_some() {
        None
    } else {
        Some(first.0.to_string())
    }
}

pub fn absence(
    employer_id: &str,
    employee_id: &str,
    a: &wire::Absence,
    first_day: NaiveDate,
    employment_id: Option<String>,
) -> Absence {
    let end = a.end_of_absence();
    let summary = a.progress.as_ref();
    Absence {
        id: a.id.clone(),
        employer_id: employer_id.to_string(),
        employee_id: employee_id.to_string(),
        employment_id,
        first_day,
        last_day: end.and_then(|e| e.date),
        end_reason: end.and_then(|e| meta_value(&e.reason)),
        end_reason_code: end.and_then(|e| meta_key(&e.reason)),
        cause: meta_value(&a.cause_of_absence),
        cause_code: meta_key(&a.cause_of_absence),
        expected_duration: meta_value(&a.expected_duration),
        expected_duration_code: meta_key(&a.expected_duration),
        is_work_related: a.is_work_related_illness,
        is_accident: Some(
            a.accident_type
                .as_ref()
                .and_then(|t| t.key)
                .is_some_and(|k| k != 0),
        ),
        is_third_party_liability: a.is_third_party_liability,
        current_incapacity_percentage: summary
            .and_then(|p| p.current_incapacity_percentage)
            .map(Decimal::from),
    }
}

pub fn absence_progress(
    employer_id: &str,
    absence_id: &str,
    p: &wire::AbsenceProgress,
) -> Result<AbsenceProgress, MapError> {
    let start_date = p
        .start_date
        .ok_or_else(|| missing("absence_progress", &p.id, "has no startDate"))?;
    Ok(AbsenceProgress {
        id: p.id.clone(),
        employer_id: employer_id.to_string(),
        absence_id: absence_id.to_string(),
        start_date,
        end_date: p.end_date,
        incapacity_percentage: p.incapacity_percentage.map(Decimal::from),
        work_resumption_type: meta_value(&p.type_of_work_resumption),
        work_resumption_type_code: meta_key(&p.type_of_work_resumption),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }

    fn dec(s: &str) -> Decimal {
        s.parse().expect("test decimal")
    }

    fn working_hours(json: serde_json::Value) -> wire::WorkingHours {
        serde_json::from_value(json).expect("test working hours")
    }

    #[test]
    fn workweek_derives_days_and_parttime_from_the_pattern() {
        let w = working_hours(serde_json::json!({
            "id": "w1", "startDate": "2024-01-01", "endDate": null,
            "aggregatedHoursPerWeek": 36, "shift": {"fullTimeHoursPerWeek": 40},
            "workPattern": {
                "oddWeeks": {"monday": 8, "tuesday": 8, "wednesday": 8, "thursday": 8, "friday": 8, "saturday": 0, "sunday": 0},
                "evenWeeks": {"monday": 8, "tuesday": 8, "wednesday": 8, "thursday": 4, "friday": 0, "saturday": 0, "sunday": 0}
            }
        }));
        let p = workweek_period("er", "em", &w).expect("maps");
        assert_eq!(p.days_per_week, Some(dec("4.5")));
        assert_eq!(p.parttime_percentage, Some(dec("90.00")));
        assert_eq!(
            p.work_pattern.as_deref(),
            Some(
                "{\"odd\":{\"monday\":8,\"tuesday\":8,\"wednesday\":8,\"thursday\":8,\"friday\":8,\"saturday\":0,\"sunday\":0},\
                 \"even\":{\"monday\":8,\"tuesday\":8,\"wednesday\":8,\"thursday\":4,\"friday\":0,\"saturday\":0,\"sunday\":0}}"
            )
        );
        let json: serde_json::Value =
            serde_json::from_str(p.work_pattern.as_deref().unwrap_or_default())
                .expect("valid JSON");
        assert_eq!(json["even"]["thursday"], 4);
    }

    #[test]
    fn explicit_parttime_factor_wins_and_no_pattern_means_null() {
        let w = working_hours(serde_json::json!({
            "id": "w2", "startDate": "2024-01-01", "aggregatedHoursPerWeek": 20,
            "averageParttimeFactor": 55.555, "shift": {"fullTimeHoursPerWeek": 40}, "workPattern": null
        }));
        let p = workweek_period("er", "em", &w).expect("maps");
        assert_eq!(p.parttime_percentage, Some(dec("55.56")));
        assert_eq!(p.days_per_week, None);
        assert_eq!(p.work_pattern, None);
    }

    #[test]
    fn absence_end_is_read_from_progress_or_top_level() {
        let nested: wire::Absence = serde_json::from_value(serde_json::json!({
            "id": "a1", "progress": {"startDate": "2025-02-03", "currentIncapacityPercentage": 50,
              "endOfAbsence": {"date": "2025-03-01", "reason": {"key": 1, "value": "Hersteld"}}}
        }))
        .expect("absence");
        let top: wire::Absence = serde_json::from_value(serde_json::json!({
            "id": "a2", "progress": {"startDate": "2025-02-03", "currentIncapacityPercentage": 50},
            "endOfAbsence": {"date": "2025-03-02", "reason": null}
        }))
        .expect("absence");
        assert_eq!(
            nested.end_of_absence().and_then(|e| e.date),
            Some(d("2025-03-01"))
        );
        assert_eq!(
            top.end_of_absence().and_then(|e| e.date),
            Some(d("2025-03-02"))
        );
        let rec = absence("er", "ee", &nested, d("2025-02-03"), None);
        assert_eq!(rec.end_reason.as_deref(), Some("Hersteld"));
        assert_eq!(rec.current_incapacity_percentage, Some(Decimal::from(50)));
        assert_eq!(rec.is_accident, Some(false));
    }

    #[test]
    fn first_day_is_the_earliest_progress_start() {
        let a: wire::Absence = serde_json::from_value(serde_json::json!({
            "id": "a1", "progress": {"startDate": "2025-02-17", "currentIncapacityPercentage": 50}
        }))
        .expect("absence");
        let progress: Vec<wire::AbsenceProgress> = serde_json::from_value(serde_json::json!([
            {"id": "p2", "startDate": "2025-02-17", "incapacityPercentage": 50},
            {"id": "p1", "startDate": "2025-02-03", "endDate": "2025-02-16", "incapacityPercentage": 100}
        ]))
        .expect("progress");
        assert_eq!(first_day(&a, &progress), Some(d("2025-02-03")));
        assert_eq!(first_day(&a, &[]), Some(d("2025-02-17")));
    }

    #[test]
    fn employment_resolution_needs_exactly_one_covering_employment() {
        let one = [
            ("e1", d("2020-01-01"), None),
            ("e2", d("2010-01-01"), Some(d("2019-12-31"))),
        ];
        assert_eq!(
            resolve_employment(d("2024-05-01"), one),
            Some("e1".to_string())
        );
        let two = [("e1", d("2020-01-01"), None), ("e2", d("2021-01-01"), None)];
        assert_eq!(resolve_employment(d("2024-05-01"), two), None);
        assert_eq!(resolve_employment(d("2009-05-01"), one), None);
    }

    #[test]
    fn history_window() {
        assert!(in_history_window(None, d("2024-01-01")));
        assert!(in_history_window(Some(d("2024-01-01")), d("2024-01-01")));
        assert!(!in_history_window(Some(d("2023-12-31")), d("2024-01-01")));
    }
}
