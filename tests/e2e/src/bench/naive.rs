//! B6: the peer to compare against — a naive full-fetch client, the strategy public Loket
//! connectors use: every time, read every employer, its payroll administrations, departments,
//! employees and employments, and every child list (organizational entities, working hours and
//! wages per employment, absences per employee, progress per absence). No version numbers, no
//! cursor, nothing skipped.
//!
//! It is deliberately not a straw man: it uses the agent's own [`LoketClient`] (same throttle,
//! same `max_parallel_requests`, same page size), reads lists rather than one detail request per
//! item, runs `concurrent_employers` employers at a time like the agent, and writes nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use arbosync_agent::loket::{ConnectionSettings, LoketClient, MemoryTokenStore, RefreshToken};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use loket_sim::RunningSim;

use super::agent::REQUESTS_PER_SECOND;

/// What one full fetch read.
#[derive(Debug, Clone, Copy, Default)]
pub struct NaiveRun {
    pub wall: Duration,
    /// Requests the client sent (every attempt counts).
    pub requests: u64,
    /// Items read, all lists together.
    pub items: u64,
}

/// A client for the simulator with its own fresh refresh token (tokens rotate, so it must not
/// share the agent's).
pub fn client(sim: &RunningSim, refresh_token: String, parallel: usize) -> Result<LoketClient> {
    let mut s = ConnectionSettings::new(
        sim.api_url.parse().context("the simulator's api_url")?,
        sim.oauth_url.parse().context("the simulator's oauth_url")?,
        sim.client_id.clone(),
    );
    s.requests_per_second = REQUESTS_PER_SECOND;
    s.max_parallel_requests = parallel;
    let store = MemoryTokenStore::new(Some(RefreshToken::new(refresh_token)));
    LoketClient::new(s, Arc::new(store)).context("building the naive client")
}

/// Reads everything once; the wall time includes the token refresh.
pub async fn full_fetch(client: &LoketClient, concurrent_employers: usize) -> Result<NaiveRun> {
    let started = Instant::now();
    let before = client.requests_sent();
    let employers = client.employers().await.context("naive: employers")?;
    let mut items = employers.len() as u64;
    let per_employer: Vec<u64> = stream::iter(employers.iter().map(|e| employer(client, &e.id)))
        .buffer_unordered(concurrent_employers.max(1))
        .try_collect()
        .await?;
    items += per_employer.iter().sum::<u64>();
    Ok(NaiveRun {
        wall: started.elapsed(),
        requests: client.requests_sent() - before,
        items,
    })
}

async fn employer(c: &LoketClient, id: &str) -> Result<u64> {
    let p = c.max_parallel_requests();
    let (_detail, admins, departments, employees, employments) = tokio::try_join!(
        c.employer(id),
        c.payroll_administrations(id),
        c.departments(id),
        c.employees(id),
        c.employments(id),
    )
    .context("naive: employer lists")?;
    let mut items =
        1 + (admins.len() + departments.len() + employees.len() + employments.len()) as u64;

    let histories: Vec<u64> = stream::iter(employments.iter().map(|e| async move {
        let (orgs, hours, wages) = tokio::try_join!(
            c.organizational_entities(&e.id),
            c.working_hours(&e.id),
            c.wages(&e.id),
        )?;
        Ok::<u64, arbosync_agent::loket::LoketError>(
            (orgs.len() + hours.len() + wages.len()) as u64,
        )
    }))
    .buffer_unordered(p)
    .try_collect()
    .await
    .context("naive: employment histories")?;
    items += histories.iter().sum::<u64>();

    let absences: Vec<Vec<String>> = stream::iter(employees.iter().map(|e| async move {
        let list = c.absences(&e.id).await?;
        Ok::<_, arbosync_agent::loket::LoketError>(list.into_iter().map(|a| a.id).collect())
    }))
    .buffer_unordered(p)
    .try_collect()
    .await
    .context("naive: absences")?;
    let absence_ids: Vec<String> = absences.into_iter().flatten().collect();
    items += absence_ids.len() as u64;

    let progress: Vec<u64> = stream::iter(absence_ids.iter().map(|a| async move {
        Ok::<u64, arbosync_agent::loket::LoketError>(c.absence_progress(a).await?.len() as u64)
    }))
    .buffer_unordered(p)
    .try_collect()
    .await
    .context("naive: absence progress")?;
    items += progress.iter().sum::<u64>();
    Ok(items)
}
