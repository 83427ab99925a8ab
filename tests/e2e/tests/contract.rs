//! Contract test against Loket's official OpenAPI document (`$LOKET_OPENAPI`).
//!
//! 1. Every endpoint the agent uses is called on the simulator with the document's own `Accept`
//!    media type, and the body is validated against the documented 200-response schema.
//! 2. The agent's Loket client is run over every resource method; each request it sent (as the
//!    simulator recorded it) must hit a documented path, use only documented query parameters and
//!    send one of the documented `Accept` versions.
//!
//! The list of validated endpoints is printed and written to `target/contract-endpoints.txt`.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use arbosync_e2e::openapi::Spec;
use serde_json::Value;

/// The endpoints the agent uses (loket-api.md §8 and the sync's plan).
const ENDPOINTS: &[&str] = &[
    "/providers/employers",
    "/providers/employers/{employerId}",
    "/providers/employers/lastmodifiedversionnumbers",
    "/providers/employers/{employerId}/departments",
    "/providers/employers/{employerId}/payrolladministrations",
    "/providers/employers/{employerId}/employees",
    "/providers/employers/employees/{employeeId}",
    "/providers/employers/employees/{employeeId}/citizenservicenumber",
    "/providers/employers/{employerId}/employees/employments",
    "/providers/employers/{employerId}/employees/employments/lastmodifiedversionnumbers",
    "/providers/employers/employees/employments/{employmentId}",
    "/providers/employers/employees/{employeeId}/employments",
    "/providers/employers/employees/employments/{employmentId}/organizationalentities",
    "/providers/employers/employees/employments/{employmentId}/workinghours",
    "/providers/employers/employees/employments/{employmentId}/wages",
    "/providers/employers/employees/{employeeId}/absences",
    "/providers/employers/employees/absences/{absenceId}",
    "/providers/employers/employees/absences/{absenceId}/absenceprogress",
    "/providers/employers/{employerId}/employees/employments/calendar/absences",
    "/providers/employers/{employerId}/actualorganizationalentities",
    "/providers/employers/{employerId}/actualworkinghours",
    "/providers/employers/{employerId}/actualwages",
    "/providers/employers/{employerId}/employees/employments/comprehensive",
];

struct Probe {
    http: reqwest::Client,
    api_url: String,
    token: String,
}

impl Probe {
    async fn get(&self, path: &str, query: &[(&str, String)], accept: &str) -> Result<Value> {
        let resp = self
            .http
            .get(format!("{}{}", self.api_url, path))
            .bearer_auth(&self.token)
            .header("Accept", accept)
            .query(query)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("GET {path} answered {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("GET {path}: body is not JSON"))
    }
}

fn first_id(list: &Value) -> Option<String> {
    list["_embedded"].as_array()?.first()?["id"]
        .as_str()
        .map(str::to_string)
}

fn fill(template: &str, ids: &BTreeMap<&str, String>) -> Result<String> {
    let mut path = template.to_string();
    for (name, value) in ids {
        path = path.replace(&format!("{{{name}}}"), value);
    }
    if path.contains('{') {
        bail!("no id to fill {template}");
    }
    Ok(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_responses_match_the_official_document() -> Result<()> {
    let spec = Spec::load()?;
    let sim = loket_sim::start(loket_sim::SimConfig {
        seed: 7,
        employers: 2,
        employees_per_employer: 25,
        max_page_size: 10,
        ..Default::default()
    })
    .await?;

    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{}/token", sim.oauth_url))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", sim.refresh_token.as_str()),
            ("client_id", sim.client_id.as_str()),
        ])
        .send()
        .await?
        .json()
        .await?;
    let probe = Probe {
        http,
        api_url: sim.api_url.clone(),
        token: token["access_token"]
            .as_str()
            .context("no access_token")?
            .to_string(),
    };

    // Collect real ids by walking the API: an employer, an employee with an absence, its
    // employment and the absence.
    let today = chrono::Utc::now().date_naive();
    let employer_id = sim
        .employer_ids
        .first()
        .context("simulator has no employers")?
        .clone();
    let mut ids: BTreeMap<&str, String> = BTreeMap::new();
    ids.insert("employerId", employer_id.clone());
    let employees_accept = "application/json;version=2021-03-29";
    let mut page = 1;
    'find: loop {
        let list = probe
            .get(
                &format!("/providers/employers/{employer_id}/employees"),
                &[("pageNumber", page.to_string())],
                employees_accept,
            )
            .await?;
        for e in list["_embedded"].as_array().into_iter().flatten() {
            let Some(employee_id) = e["id"].as_str() else {
                continue;
            };
            let absences = probe
                .get(
                    &format!("/providers/employers/employees/{employee_id}/absences"),
                    &[],
                    "application/json;version=2020-03-16",
                )
                .await?;
            if let Some(absence_id) = first_id(&absences) {
                ids.insert("employeeId", employee_id.to_string());
                ids.insert("absenceId", absence_id);
                break 'find;
            }
        }
        if list["currentPage"].as_i64() >= list["totalPages"].as_i64() {
            bail!("no employee with an absence in the simulated employer");
        }
        page += 1;
    }
    let employments = probe
        .get(
            &fill(
                "/providers/employers/employees/{employeeId}/employments",
                &ids,
            )?,
            &[],
            "application/json;version=2019-12-16",
        )
        .await?;
    ids.insert(
        "employmentId",
        first_id(&employments).context("employee without employment")?,
    );

    let mut validated = Vec::new();
    let mut failures = Vec::new();
    for template in ENDPOINTS {
        let op = spec.operation(template)?;
        let path = fill(template, &ids)?;
        let mut query: Vec<(&str, String)> = Vec::new();
        if op.query_params.contains("referenceDate") {
            query.push(("referenceDate", today.to_string()));
        }
        if op.query_params.contains("startDate") {
            query.push(("startDate", (today - chrono::Days::new(400)).to_string()));
            query.push(("endDate", (today + chrono::Days::new(60)).to_string()));
        }
        for media_type in &op.media_types {
            let result = async {
                let body = probe.get(&path, &query, media_type).await?;
                spec.validate_response(template, media_type, &body)
            }
            .await;
            match result {
                Ok(()) => {
                    validated.push(format!("{} {} [{}]", op.operation_id, template, media_type))
                }
                Err(e) => failures.push(format!("{template} [{media_type}]: {e:#}")),
            }
        }
    }

    let report = format!(
        "Validated against {} ({} endpoints, {} media types):\n{}\n",
        arbosync_e2e::openapi::document_path().display(),
        ENDPOINTS.len(),
        validated.len(),
        validated.join("\n")
    );
    println!("{report}");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    std::fs::create_dir_all(&target)?;
    std::fs::write(target.join("contract-endpoints.txt"), &report)?;
    sim.shutdown().await;

    if !failures.is_empty() {
        bail!(
            "{} responses do not match the official document:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
    assert!(
        ENDPOINTS.len() >= 15,
        "the contract must cover at least 15 endpoints"
    );
    Ok(())
}

/// Runs the agent's client over every resource it uses and checks each request it sent against
/// the document: a documented path, documented query parameters only, a documented `Accept`
/// version, and the same path and version as the client's own resource table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_requests_match_the_official_document() -> Result<()> {
    use arbosync_agent::loket::{
        ConnectionSettings, LoketClient, MemoryTokenStore, RESOURCES, RefreshToken,
    };
    use std::sync::Arc;

    let spec = Spec::load()?;
    // The client's resource table agrees with the document.
    for r in RESOURCES {
        let op = spec.operation(r.path_template)?;
        assert_eq!(
            op.operation_id, r.operation_id,
            "operationId of {}",
            r.path_template
        );
        assert!(
            op.media_types.contains(&r.accept()),
            "{} pins {} but the document offers {:?}",
            r.path_template,
            r.accept(),
            op.media_types
        );
    }

    let sim = loket_sim::start(loket_sim::SimConfig {
        seed: 11,
        employers: 1,
        employees_per_employer: 15,
        max_page_size: 4,
        ..Default::default()
    })
    .await?;
    let mut settings = ConnectionSettings::new(
        sim.api_url.parse()?,
        sim.oauth_url.parse()?,
        sim.client_id.clone(),
    );
    settings.requests_per_second = f64::INFINITY;
    let store = Arc::new(MemoryTokenStore::new(Some(RefreshToken::new(
        sim.refresh_token.clone(),
    ))));
    let client = LoketClient::new(settings, store)?;

    let today = chrono::Utc::now().date_naive();
    let er = sim.employer_ids[0].clone();
    client.employers().await?;
    client.employer(&er).await?;
    let versions = client.employer_version_numbers(None).await?;
    client
        .employer_version_numbers(Some(versions[0].last_modified_version_number - 1))
        .await?;
    client.departments(&er).await?;
    client.payroll_administrations(&er).await?;
    let employees = client.employees(&er).await?;
    client.employments(&er).await?;
    client.employment_version_numbers(&er, Some(1)).await?;
    client.employments_comprehensive(&er, today).await?;
    client.actual_organizational_entities(&er, today).await?;
    client.actual_working_hours(&er, today).await?;
    client.actual_wages(&er, today).await?;
    client
        .calendar_absences(&er, today - chrono::Days::new(365), today)
        .await?;
    let mut saw_absence = false;
    for e in &employees {
        let employments = client.employments_of_employee(&e.id).await?;
        client.employee(&e.id).await?;
        client.citizen_service_number(&e.id).await?;
        if let Some(em) = employments.first() {
            client.employment(&em.id).await?;
            client.organizational_entities(&em.id).await?;
            client.working_hours(&em.id).await?;
            client.wages(&em.id).await?;
        }
        let absences = client.absences(&e.id).await?;
        if let Some(a) = absences.first() {
            client.absence(&a.id).await?;
            client.absence_progress(&a.id).await?;
            saw_absence = true;
            break;
        }
    }
    assert!(
        saw_absence,
        "the dataset must contain an absence to exercise the absence endpoints"
    );

    let recorded: Vec<Value> = reqwest::get(format!("{}/_sim/requests", sim.base_url))
        .await?
        .json()
        .await?;
    sim.shutdown().await;
    assert!(!recorded.is_empty(), "the simulator recorded no requests");
    let mut used = std::collections::BTreeSet::new();
    let mut problems = Vec::new();
    for r in &recorded {
        let path = r["path"].as_str().unwrap_or_default();
        let rel = path.strip_prefix("/v2").unwrap_or(path);
        let Some(template) = spec.match_path(rel) else {
            problems.push(format!("{path}: not a documented path"));
            continue;
        };
        let op = spec.operation(template)?;
        let accept = r["accept"].as_str().unwrap_or_default();
        if !op.media_types.iter().any(|m| m == accept) {
            problems.push(format!(
                "{template}: Accept {accept:?} is not one of {:?}",
                op.media_types
            ));
        }
        if let Some(row) = RESOURCES.iter().find(|x| x.path_template == template)
            && row.accept() != accept
        {
            problems.push(format!(
                "{template}: sent {accept:?}, the resource table pins {:?}",
                row.accept()
            ));
        }
        for pair in r["query"]
            .as_str()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let name = pair.split('=').next().unwrap_or_default();
            if !op.query_params.contains(name) {
                problems.push(format!(
                    "{template}: query parameter {name:?} is not documented"
                ));
            }
        }
        used.insert(template.to_string());
    }
    println!(
        "The client used {} documented endpoints:\n{}",
        used.len(),
        used.iter().cloned().collect::<Vec<_>>().join("\n")
    );
    if !problems.is_empty() {
        bail!(
            "{} requests differ from the official document:\n{}",
            problems.len(),
            problems.join("\n")
        );
    }
    assert!(
        used.len() >= 15,
        "the client must exercise at least 15 endpoints, used {}",
        used.len()
    );
    Ok(())
}
